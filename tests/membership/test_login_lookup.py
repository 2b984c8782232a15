"""`GET /v1/access?login_name=…`: the retired API_GetSiteOwnerID's question, from our mirror."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.clients.support import assert_problem
from tests.conftest import ApiKeyFactory, Headers
from tests.listing import audit, list_calls


@pytest.fixture
async def checker(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK, name='product')}"}


async def _lookup(
    http: httpx.AsyncClient, headers: Headers, name: str, **params: str
) -> dict[str, object]:
    response = await http.get("/v1/access", params={"login_name": name, **params}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_listed_login_name_gets_the_same_decision_as_its_id(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    checker: Headers,
) -> None:
    ours = sandbox.seed_account(login_name="Jack_Box01")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)

    by_name = await _lookup(sandboxed_client, checker, "jack_BOX01")
    by_id = (
        await sandboxed_client.get(f"/v1/access/{ours.encoded_account_id}", headers=checker)
    ).json()

    assert {key: by_name[key] for key in by_id} == by_id
    assert by_name["allowed"] is True
    assert by_name["status"] == "approved"
    assert by_name["matched_by"] == "site_owner_name"
    assert by_name["login_name"] == "jack_BOX01"
    assert by_name["last_complete_listing_at"] is not None


async def test_a_billing_approved_account_that_left_us_is_allowed_by_its_name(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    checker: Headers,
    decider: Headers,
) -> None:
    leaving = sandbox.seed_account(login_name="jill_hill02")
    for number in range(20):
        sandbox.seed_account(login_name=f"stays_{number:02}")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)
    sandbox.move(leaving.encoded_account_id, "other")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)
    denied = await _lookup(sandboxed_client, checker, "jill_hill02")
    assert (denied["allowed"], denied["status"]) == (False, "other_partner")

    approval = await sandboxed_client.post(
        f"/v1/clients/{leaving.encoded_account_id}/billing-approval",
        json={"note": "billed separately"},
        headers=decider,
    )
    assert approval.status_code == 200, approval.text
    allowed = await _lookup(sandboxed_client, checker, "JILL_HILL02")

    assert (allowed["allowed"], allowed["status"]) == (True, "billing_approved")
    assert allowed["account_id"] == leaving.encoded_account_id


async def test_an_unknown_name_says_so_with_the_time_of_our_last_complete_listing(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    checker: Headers,
) -> None:
    never_listed = await _lookup(sandboxed_client, checker, "nobody_here")
    assert never_listed == {
        "login_name": "nobody_here",
        "account_id": None,
        "allowed": False,
        "status": "unknown",
        "reason": "no_complete_listing",
        "verified_at": None,
        "stale": False,
        "matched_by": None,
        "last_complete_listing_at": None,
    }

    sandbox.seed_account(login_name="somebody_else")
    run = await audit(sessionmaker, engine, sandboxed_settings, sandbox)
    after = await _lookup(sandboxed_client, checker, "nobody_here")

    assert (after["status"], after["reason"], after["allowed"]) == (
        "unknown",
        "not_in_partner_list",
        False,
    )
    assert run.finished_at is not None
    listed_at = str(after["last_complete_listing_at"])
    assert run.started_at is not None
    assert run.started_at.isoformat() <= listed_at <= run.finished_at.isoformat()


async def test_fresh_reads_the_partner_list_first_and_stops_when_the_name_turns_up(
    sandboxed_client: httpx.AsyncClient,
    sandbox: SandboxState,
    checker: Headers,
    reader: Headers,
) -> None:
    accounts = [sandbox.seed_account(login_name=f"acct_{number:03}") for number in range(120)]
    cached = await _lookup(sandboxed_client, checker, "acct_060")
    assert cached["status"] == "unknown"

    fresh = await _lookup(sandboxed_client, checker, "ACCT_060", consistency="fresh")

    assert (fresh["allowed"], fresh["status"], fresh["reason"]) == (True, "approved", "approved")
    assert fresh["account_id"] == accounts[60].encoded_account_id
    assert list_calls(sandbox) == 2  # accounts 0-49 and 50-99: no further
    stored = await sandboxed_client.get(f"/v1/clients/{fresh['account_id']}", headers=reader)
    assert stored.json()["site_owner_name"] == "acct_060"

    absent = await _lookup(sandboxed_client, checker, "acct_999", consistency="fresh")
    assert (absent["status"], absent["reason"]) == ("unknown", "not_in_partner_list")
    assert absent["last_complete_listing_at"] is not None
    assert list_calls(sandbox) == 2 + 3


async def test_fresh_falls_back_to_the_store_when_ctct_cannot_finish(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    checker: Headers,
) -> None:
    sandbox.seed_account(login_name="jack_box01")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)
    sandbox.add_fault("unavailable", "list", count=10)

    answer = await _lookup(sandboxed_client, checker, "jack_box01", consistency="fresh")

    assert (answer["allowed"], answer["status"], answer["reason"]) == (
        True,
        "approved",
        "ctct_unavailable",
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "login_name"), ({"login_name": " "}, "login_name"), ({"login_name": "x" * 201}, None)],
    ids=["missing", "blank", "too-long"],
)
async def test_a_bad_name_is_a_400_problem(
    sandboxed_client: httpx.AsyncClient,
    checker: Headers,
    params: dict[str, str],
    field: str | None,
) -> None:
    response = await sandboxed_client.get("/v1/access", params=params, headers=checker)
    assert_problem(response, 400, field)


async def test_a_bad_consistency_is_a_400_problem(
    sandboxed_client: httpx.AsyncClient, checker: Headers
) -> None:
    response = await sandboxed_client.get(
        "/v1/access", params={"login_name": "a", "consistency": "eventual"}, headers=checker
    )
    assert_problem(response, 400)


async def test_the_lookup_needs_the_access_check_scope(
    sandboxed_client: httpx.AsyncClient, reader: Headers
) -> None:
    response = await sandboxed_client.get("/v1/access?login_name=a", headers=reader)
    assert_problem(response, 403)
