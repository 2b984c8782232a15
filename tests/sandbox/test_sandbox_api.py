"""The sandbox over HTTP (in process, through ASGITransport): CTCT's behaviour and contract."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from app.sandbox import errors
from app.sandbox.app import create_sandbox_app, seed_demo
from app.sandbox.partners import (
    OTHER_ENCODED_PARTNER_ID,
    OTHER_PARTNER,
    OUR_ENCODED_PARTNER_ID,
    OUR_PARTNER,
    Partner,
)
from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from tests.contract import validate_definition, validate_response
from tests.kit.polling import poll_until

ACCOUNTS = "/v3/partner/accounts"
FORM = {"content-type": "application/x-www-form-urlencoded"}
TOKEN_PARAMS = {"grant_type": "client_credentials", "scope": "v3api/general.partner"}


@pytest.fixture
def state() -> SandboxState:
    sandbox = SandboxState(rate_per_second=1_000)
    sandbox.clock.freeze()
    return sandbox


@pytest.fixture
async def sandbox(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield client


async def partner_token(client: httpx.AsyncClient, partner: Partner = OUR_PARTNER) -> str:
    response = await client.post(
        "/oauth2/token",
        params=TOKEN_PARAMS,
        auth=(partner.client_id, partner.client_secret),
        headers=FORM,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def ours(sandbox: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a partner call by our partner."""
    token = await partner_token(sandbox)
    return {"x-api-key": OUR_PARTNER.api_key, "authorization": f"Bearer {token}"}


@pytest.fixture
async def theirs(sandbox: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a partner call by the other partner."""
    token = await partner_token(sandbox, OTHER_PARTNER)
    return {"x-api-key": OTHER_PARTNER.api_key, "authorization": f"Bearer {token}"}


def create_body(login_name: str = "hank_smith", **changes: Any) -> dict[str, Any]:
    return {
        "contact_email": f"{login_name}@example.com",
        "country_code": "US",
        "state_code": "MA",
        "login_name": login_name,
        "password": "Fresh fruit 4 all",
        "organization_name": "Hanks Fresh Fruit",
        "first_name": "Hank",
        "last_name": "Smith",
        **changes,
    }


def assert_error_list(body: object, key: str) -> None:
    validate_definition("APIErrorSchema", body)
    assert isinstance(body, list)
    assert body
    assert {item["error_key"] for item in body} == {key}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    validate_definition("AuthorizationErrorSchema", response.json())
    assert response.json() == {"error_key": "unauthorized", "error_message": "Unauthorized"}


# Token endpoint


async def test_token_is_a_one_hour_bearer_jwt_on_the_sandbox_clock(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    response = await sandbox.post(
        "/oauth2/token",
        params=TOKEN_PARAMS,
        auth=(OUR_PARTNER.client_id, OUR_PARTNER.client_secret),
        headers=FORM,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert set(body) == {"access_token", "expires_in", "token_type"}
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == int(state.now().timestamp())


async def test_token_parameters_may_come_in_the_form_body(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        "/oauth2/token",
        content="grant_type=client_credentials&scope=v3api%2Fgeneral.partner",
        auth=(OUR_PARTNER.client_id, OUR_PARTNER.client_secret),
        headers=FORM,
    )

    assert response.status_code == 200


async def test_token_without_the_form_content_type_is_415(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        "/oauth2/token",
        params=TOKEN_PARAMS,
        auth=(OUR_PARTNER.client_id, OUR_PARTNER.client_secret),
        json={},
    )

    assert response.status_code == 415


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(basic(OUR_PARTNER.client_id, "wrong-secret"), id="wrong-secret"),
        pytest.param(basic("nobody", OUR_PARTNER.client_secret), id="unknown-client"),
        pytest.param(basic(OTHER_PARTNER.client_id, OUR_PARTNER.client_secret), id="mixed-up"),
        pytest.param("Basic !!!", id="not-base64"),
        pytest.param(None, id="no-credentials"),
    ],
)
async def test_token_with_a_bad_client_is_invalid_client(
    sandbox: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = dict(FORM)
    if authorization is not None:
        headers["authorization"] = authorization

    response = await sandbox.post("/oauth2/token", params=TOKEN_PARAMS, headers=headers)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param({"grant_type": "password"}, "unsupported_grant_type", id="password-grant"),
        pytest.param({"scope": "v3api/general.partner"}, "unsupported_grant_type", id="no-grant"),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "account_read"},
            "invalid_scope",
            id="user-scope",
        ),
    ],
)
async def test_token_with_a_bad_grant_or_scope_is_refused(
    sandbox: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    response = await sandbox.post(
        "/oauth2/token",
        params=params,
        auth=(OUR_PARTNER.client_id, OUR_PARTNER.client_secret),
        headers=FORM,
    )

    assert response.status_code == 400
    assert response.json() == {"error": error}


async def test_token_calls_do_not_count_against_the_api_key_limits(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    state.set_limits(rate_per_second=1, daily_quota=1)

    tokens = [await partner_token(sandbox) for _ in range(3)]
    response = await sandbox.get(
        ACCOUNTS, headers={"x-api-key": OUR_PARTNER.api_key, "authorization": tokens[-1]}
    )

    assert response.status_code == 200


# Partner authentication


@pytest.mark.parametrize(
    "api_key", [pytest.param(None, id="missing"), pytest.param("not-a-key", id="unknown")]
)
async def test_partner_call_without_a_known_api_key_is_401(
    sandbox: httpx.AsyncClient, ours: dict[str, str], api_key: str | None
) -> None:
    headers = {"authorization": ours["authorization"]}
    if api_key is not None:
        headers["x-api-key"] = api_key

    assert_unauthorized(await sandbox.get(ACCOUNTS, headers=headers))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer not.a.jwt", id="garbage"),
        pytest.param("Bearer ", id="empty"),
        pytest.param(
            "Bearer " + jwt.encode({"client_id": "sandbox-partner-client"}, "x" * 32),
            id="forged",
        ),
    ],
)
async def test_partner_call_without_a_valid_token_is_401(
    sandbox: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"x-api-key": OUR_PARTNER.api_key}
    if authorization is not None:
        headers["authorization"] = authorization

    assert_unauthorized(await sandbox.get(ACCOUNTS, headers=headers))


async def test_the_jwt_is_accepted_without_the_bearer_prefix(
    sandbox: httpx.AsyncClient,
) -> None:
    token = await partner_token(sandbox)

    response = await sandbox.get(
        ACCOUNTS, headers={"x-api-key": OUR_PARTNER.api_key, "authorization": token}
    )

    assert response.status_code == 200


async def test_a_token_expires_after_an_hour_of_sandbox_time(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.advance_clock(3599)
    assert (await sandbox.get(ACCOUNTS, headers=ours)).status_code == 200

    state.advance_clock(1)

    assert_unauthorized(await sandbox.get(ACCOUNTS, headers=ours))


async def test_invalidated_tokens_are_401_and_a_new_token_works(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.invalidate_partner_tokens()

    assert_unauthorized(await sandbox.get(ACCOUNTS, headers=ours))
    fresh = await partner_token(sandbox)
    response = await sandbox.get(
        ACCOUNTS, headers={"x-api-key": OUR_PARTNER.api_key, "authorization": fresh}
    )
    assert response.status_code == 200


async def test_an_api_key_of_another_partner_than_the_token_is_403(
    sandbox: httpx.AsyncClient, ours: dict[str, str]
) -> None:
    headers = {**ours, "x-api-key": OTHER_PARTNER.api_key}

    response = await sandbox.get(ACCOUNTS, headers=headers)

    assert response.status_code == 403
    assert response.json()["error_key"] == errors.FORBIDDEN_ERROR_KEY


# Create


async def test_create_answers_201_and_starts_a_trial_under_the_callers_partner(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    response = await sandbox.post(ACCOUNTS, json=create_body(), headers=ours)

    assert response.status_code == 201
    body = response.json()
    validate_response(ACCOUNTS, "post", 201, body)
    assert set(body) == {"encoded_account_id", "provision_uuid"}
    account = state.find(body["encoded_account_id"])
    assert account is not None
    assert account.partner == "ours"
    assert account.login_name == "hank_smith"
    assert account.site_owner_name == "hank_smith"
    assert (account.plan_type, account.billing_status) == ("TRIAL", "Trial")
    assert account.billing_day_of_month is None
    assert account.provision_uuid == body["provision_uuid"]
    assert "Fresh fruit" not in repr(account.to_json())


async def test_an_account_created_by_the_other_partner_is_theirs(
    sandbox: httpx.AsyncClient, state: SandboxState, theirs: dict[str, str]
) -> None:
    response = await sandbox.post(ACCOUNTS, json=create_body(), headers=theirs)

    account = state.find(response.json()["encoded_account_id"])
    assert account is not None
    assert account.partner == "other"


async def test_create_reports_every_field_error_as_ctcts_array(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    body = create_body(login_name="bad name", contact_email="nope", website="example.com")

    response = await sandbox.post(ACCOUNTS, json=body, headers=ours)

    assert response.status_code == 400
    validate_response(ACCOUNTS, "post", 400, response.json())
    assert_error_list(response.json(), errors.VALIDATION_ERROR_KEY)
    messages = sorted(item["error_message"] for item in response.json())
    assert [message.split(":")[0] for message in messages] == [
        "contact_email",
        "login_name",
        "website",
    ]
    assert len(state.accounts) == 0


async def test_a_taken_login_name_is_409_whatever_its_case(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str], theirs: dict[str, str]
) -> None:
    await sandbox.post(ACCOUNTS, json=create_body("hank_smith"), headers=ours)

    response = await sandbox.post(ACCOUNTS, json=create_body("HANK_Smith"), headers=theirs)

    assert response.status_code == 409
    validate_response(ACCOUNTS, "post", 409, response.json())
    assert response.json() == [
        {"error_key": "partner.account.conflict", "error_message": "login_name is already in use"}
    ]
    assert len(state.accounts) == 1


async def test_create_with_a_non_json_body_is_415(
    sandbox: httpx.AsyncClient, ours: dict[str, str]
) -> None:
    response = await sandbox.post(ACCOUNTS, content="login_name=x", headers={**ours, **FORM})

    assert response.status_code == 415
    assert_error_list(response.json(), errors.UNSUPPORTED_MEDIA_TYPE_ERROR_KEY)


async def test_create_with_malformed_json_is_400(
    sandbox: httpx.AsyncClient, ours: dict[str, str]
) -> None:
    response = await sandbox.post(
        ACCOUNTS, content="{not json", headers={**ours, "content-type": "application/json"}
    )

    assert response.status_code == 400
    assert_error_list(response.json(), errors.MALFORMED_JSON_ERROR_KEY)


# List


async def list_all(
    client: httpx.AsyncClient, headers: dict[str, str], first: str = ACCOUNTS
) -> tuple[list[dict[str, Any]], int]:
    """Follow `_links.next` to the end; return every item and the number of pages."""
    items: list[dict[str, Any]] = []
    url: str | None = first
    pages = 0
    while url is not None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        validate_response(ACCOUNTS, "get", 200, body)
        items.extend(body["site_owner_list"])
        url = body.get("_links", {}).get("next", {}).get("href")
        pages += 1
    return items, pages


async def test_listing_1234_accounts_yields_each_once_in_creation_order(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    seeded = state.seed_accounts(1_234, partner="ours")
    state.seed_accounts(40, partner="other", login_prefix="theirs")
    state.seed_accounts(30, partner="none", login_prefix="nobody")

    items, pages = await list_all(sandbox, ours)

    assert [item["encoded_account_id"] for item in items] == [
        account.encoded_account_id for account in seeded
    ]
    assert pages == 25
    first = items[0]
    assert first["site_owner_name"] == seeded[0].login_name
    assert first["organization_name"] == seeded[0].organization_name
    assert first["billing_status"] == "Trial"
    assert first["subscriber_count"] == seeded[0].subscriber_count


async def test_the_next_link_keeps_the_limit_and_an_opaque_offset(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.seed_accounts(25)

    first = (await sandbox.get(ACCOUNTS, params={"limit": 10}, headers=ours)).json()
    items, pages = await list_all(sandbox, ours, f"{ACCOUNTS}?limit=10")

    assert len(first["site_owner_list"]) == 10
    assert first["_links"]["next"]["href"] == "/v3/partner/accounts?offset=MTA*&limit=10"
    assert (len(items), pages) == (25, 3)


@pytest.mark.parametrize("limit", ["9", "51", "0", "-5", "ten", "12.5"])
async def test_a_limit_outside_10_to_50_means_50(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str], limit: str
) -> None:
    state.seed_accounts(60)

    body = (await sandbox.get(ACCOUNTS, params={"limit": limit}, headers=ours)).json()

    assert len(body["site_owner_list"]) == 50
    assert body["_links"]["next"]["href"].endswith("&limit=50")


@pytest.mark.parametrize("offset", ["%%%", "bm90LWEtbnVtYmVy", ""])
async def test_an_offset_we_did_not_give_out_is_400(
    sandbox: httpx.AsyncClient, ours: dict[str, str], offset: str
) -> None:
    response = await sandbox.get(ACCOUNTS, params={"offset": offset}, headers=ours)

    assert response.status_code == 400
    validate_response(ACCOUNTS, "get", 400, response.json())
    assert_error_list(response.json(), errors.VALIDATION_ERROR_KEY)


async def test_an_empty_partner_lists_nothing_and_no_links(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.seed_accounts(5, partner="other")

    body = (await sandbox.get(ACCOUNTS, headers=ours)).json()

    validate_response(ACCOUNTS, "get", 200, body)
    assert body == {"site_owner_list": []}


async def test_account_type_filters_managed_and_unmanaged(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    managed = state.seed_account(login_name="managed_one", managed=True)
    unmanaged = state.seed_account(login_name="unmanaged_one", managed=False)

    def ids(response: httpx.Response) -> list[str]:
        return [item["encoded_account_id"] for item in response.json()["site_owner_list"]]

    assert ids(await sandbox.get(ACCOUNTS, params={"account_type": "managed"}, headers=ours)) == [
        managed.encoded_account_id
    ]
    unmanaged_page = await sandbox.get(ACCOUNTS, params={"account_type": "unmanaged"}, headers=ours)
    assert ids(unmanaged_page) == [unmanaged.encoded_account_id]
    assert len(ids(await sandbox.get(ACCOUNTS, headers=ours))) == 2


async def test_a_moved_account_leaves_one_list_and_joins_the_other_in_creation_order(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str], theirs: dict[str, str]
) -> None:
    first, moving, last = state.seed_accounts(3, partner="ours")
    state.move(moving.encoded_account_id, "other")
    ours_now = [item["encoded_account_id"] for item in (await list_all(sandbox, ours))[0]]
    theirs_now = [item["encoded_account_id"] for item in (await list_all(sandbox, theirs))[0]]

    state.move(moving.encoded_account_id, "ours")
    back = [item["encoded_account_id"] for item in (await list_all(sandbox, ours))[0]]

    assert ours_now == [first.encoded_account_id, last.encoded_account_id]
    assert theirs_now == [moving.encoded_account_id]
    assert back == [first.encoded_account_id, moving.encoded_account_id, last.encoded_account_id]


async def test_listing_stays_cheap_at_100000_accounts(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    response = await sandbox.post("/_sandbox/accounts", json={"count": 100_000})
    assert response.status_code == 201
    ids = response.json()["encoded_account_ids"]
    assert len(set(ids)) == 100_000

    started = time.perf_counter()
    page = (await sandbox.get(f"{ACCOUNTS}?offset=OTk5NTA*&limit=50", headers=ours)).json()
    elapsed = time.perf_counter() - started

    assert [item["encoded_account_id"] for item in page["site_owner_list"]] == ids[99_950:]
    assert "_links" not in page
    assert elapsed < 1.0


# Plan and cancel


def plan_path(account_id: str) -> str:
    return f"{ACCOUNTS}/{account_id}/plan"


def cancel_path(account_id: str) -> str:
    return f"{ACCOUNTS}/{account_id}/status/cancel"


PLAN_TEMPLATE = "/partner/accounts/{encoded_account_id}/plan"
CANCEL_TEMPLATE = "/partner/accounts/{encoded_account_id}/status/cancel"


async def test_a_new_account_is_on_trial_without_a_billing_day(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(subscriber_count=730)

    response = await sandbox.get(plan_path(account.encoded_account_id), headers=ours)

    assert response.status_code == 200
    body = response.json()
    validate_response(PLAN_TEMPLATE, "get", 200, body)
    assert body["plan_type"] == "TRIAL"
    assert body["billing_status"] == "Trial"
    assert body["billing_day_of_month"] is None
    assert body["current_tiers"][0]["tier"] == 2
    assert body["current_tiers"][0]["current_usage"] == 730.0


@pytest.mark.parametrize(
    ("day", "expected"), [("1", 1), (28, 28), (None, "today")], ids=["string", "int", "default"]
)
async def test_leaving_trial_opens_the_account_with_a_billing_day(
    sandbox: httpx.AsyncClient,
    state: SandboxState,
    ours: dict[str, str],
    day: object,
    expected: object,
) -> None:
    account = state.seed_account()
    body: dict[str, Any] = {"plan_type": "GOLD"}
    if day is not None:
        body["billing_day_of_month"] = day

    response = await sandbox.put(plan_path(account.encoded_account_id), json=body, headers=ours)

    assert response.status_code == 200
    validate_response(PLAN_TEMPLATE, "put", 200, response.json())
    assert response.json()["plan_type"] == "GOLD"
    assert response.json()["billing_status"] == "Open"
    wanted = state.now().day if expected == "today" else expected
    assert response.json()["billing_day_of_month"] == wanted


async def test_an_open_account_cannot_go_back_to_trial(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(billing_status="Open", plan_type="SILVER")

    response = await sandbox.put(
        plan_path(account.encoded_account_id), json={"plan_type": "TRIAL"}, headers=ours
    )

    assert response.status_code == 400
    assert_error_list(response.json(), errors.PLAN_ERROR_KEY)
    assert account.plan_type == "SILVER"


async def test_a_plan_change_after_trial_ignores_the_billing_day(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(billing_status="Open", plan_type="BRONZE", billing_day_of_month=9)

    response = await sandbox.put(
        plan_path(account.encoded_account_id),
        json={"plan_type": "EMAIL_PLUS", "billing_day_of_month": 20},
        headers=ours,
    )

    assert response.json()["plan_type"] == "EMAIL_PLUS"
    assert response.json()["billing_day_of_month"] == 9


@pytest.mark.parametrize(
    ("body", "key"),
    [
        pytest.param({"plan_type": "PLATINUM"}, errors.PLAN_ERROR_KEY, id="unknown-plan"),
        pytest.param({}, errors.VALIDATION_ERROR_KEY, id="no-plan"),
        pytest.param(
            {"plan_type": "GOLD", "billing_day_of_month": 32},
            errors.VALIDATION_ERROR_KEY,
            id="day-32",
        ),
        pytest.param(
            {"plan_type": "GOLD", "billing_day_of_month": "0"},
            errors.VALIDATION_ERROR_KEY,
            id="day-0",
        ),
        pytest.param(
            {"plan_type": "GOLD", "plan_group_id": "x"}, errors.VALIDATION_ERROR_KEY, id="group"
        ),
    ],
)
async def test_an_invalid_plan_change_is_400(
    sandbox: httpx.AsyncClient,
    state: SandboxState,
    ours: dict[str, str],
    body: dict[str, Any],
    key: str,
) -> None:
    account = state.seed_account()

    response = await sandbox.put(plan_path(account.encoded_account_id), json=body, headers=ours)

    assert response.status_code == 400
    validate_response(PLAN_TEMPLATE, "put", 400, response.json())
    assert_error_list(response.json(), key)
    assert account.billing_status == "Trial"


async def test_cancel_defaults_to_now_and_the_list_shows_canceled(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(billing_status="Open", plan_type="GOLD")

    response = await sandbox.put(
        cancel_path(account.encoded_account_id), json={"reason_id": 12}, headers=ours
    )

    assert response.status_code == 200
    validate_response(CANCEL_TEMPLATE, "put", 200, response.json())
    effective = datetime.fromisoformat(response.json()["effective_date"])
    assert abs(effective - state.now()) < timedelta(milliseconds=1)
    assert response.json()["reason_id"] == 12
    listed = (await sandbox.get(ACCOUNTS, headers=ours)).json()["site_owner_list"]
    assert listed[0]["billing_status"] == "Canceled"
    plan = (await sandbox.get(plan_path(account.encoded_account_id), headers=ours)).json()
    assert plan["billing_status"] == "Canceled"


async def test_cancel_with_no_body_is_accepted(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account()

    response = await sandbox.put(cancel_path(account.encoded_account_id), headers=ours)

    assert response.status_code == 200
    validate_response(CANCEL_TEMPLATE, "put", 200, response.json())
    assert "reason_id" not in response.json()


async def test_a_future_cancellation_applies_at_its_effective_date(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(billing_status="Open", plan_type="GOLD")
    effective = (state.now() + timedelta(days=3)).isoformat()

    await sandbox.put(
        cancel_path(account.encoded_account_id), json={"effective_date": effective}, headers=ours
    )
    before = (await sandbox.get(plan_path(account.encoded_account_id), headers=ours)).json()
    state.advance_clock(3 * 86_400)
    fresh = {**ours, "authorization": await partner_token(sandbox)}
    after = (await sandbox.get(plan_path(account.encoded_account_id), headers=fresh)).json()

    assert (before["billing_status"], after["billing_status"]) == ("Open", "Canceled")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"reason_id": 4}, id="unknown-reason"),
        pytest.param({"reason_id": "1"}, id="reason-as-string"),
        pytest.param({"effective_date": "next tuesday"}, id="bad-date"),
    ],
)
async def test_an_invalid_cancellation_is_400(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str], body: dict[str, Any]
) -> None:
    account = state.seed_account()

    response = await sandbox.put(cancel_path(account.encoded_account_id), json=body, headers=ours)

    assert response.status_code == 400
    assert_error_list(response.json(), errors.VALIDATION_ERROR_KEY)
    assert account.cancel_effective_at is None


async def test_a_non_trial_plan_reactivates_a_canceled_account(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account(billing_status="Canceled", plan_type="SILVER")

    refused = await sandbox.put(
        plan_path(account.encoded_account_id), json={"plan_type": "TRIAL"}, headers=ours
    )
    response = await sandbox.put(
        plan_path(account.encoded_account_id), json={"plan_type": "GOLD"}, headers=ours
    )

    assert refused.status_code == 400
    assert response.status_code == 200
    assert response.json()["billing_status"] == "Open"
    assert response.json()["plan_type"] == "GOLD"


async def test_a_trial_ends_after_60_days(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    account = state.seed_account()
    state.advance_clock(60 * 86_400)
    fresh = {**ours, "authorization": await partner_token(sandbox)}

    plan = (await sandbox.get(plan_path(account.encoded_account_id), headers=fresh)).json()
    opened = await sandbox.put(
        plan_path(account.encoded_account_id), json={"plan_type": "BRONZE"}, headers=fresh
    )

    assert plan["billing_status"] == "Trial End"
    assert opened.json()["billing_status"] == "Open"


LIFECYCLE_CALLS = [
    pytest.param("GET", "plan", None, id="get-plan"),
    pytest.param("PUT", "plan", {"plan_type": "GOLD"}, id="put-plan"),
    pytest.param("PUT", "status/cancel", {}, id="cancel"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), LIFECYCLE_CALLS)
@pytest.mark.parametrize("owner", ["other", "none"])
async def test_an_account_that_is_not_ours_is_400_not_managed(
    sandbox: httpx.AsyncClient,
    state: SandboxState,
    ours: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    owner: str,
) -> None:
    account = state.seed_account(partner=owner)

    response = await sandbox.request(
        method, f"{ACCOUNTS}/{account.encoded_account_id}/{suffix}", json=body, headers=ours
    )

    assert response.status_code == 400
    assert response.json() == [
        {"error_key": errors.NOT_MANAGED_ERROR_KEY, "error_message": errors.NOT_MANAGED_MESSAGE}
    ]
    assert response.json()[0]["error_key"] == "partner.account.not_managed"
    assert (account.plan_type, account.cancel_effective_at) == ("TRIAL", None)


@pytest.mark.parametrize(("method", "suffix", "body"), LIFECYCLE_CALLS)
async def test_an_unknown_account_is_404(
    sandbox: httpx.AsyncClient,
    ours: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    response = await sandbox.request(
        method, f"{ACCOUNTS}/a0zzzzzzzzzz/{suffix}", json=body, headers=ours
    )

    assert response.status_code == 404
    assert_error_list(response.json(), errors.NOT_FOUND_ERROR_KEY)


# Account summary


@pytest.mark.parametrize(
    ("owner", "partner_id"),
    [("ours", OUR_ENCODED_PARTNER_ID), ("other", OTHER_ENCODED_PARTNER_ID), ("none", "")],
)
async def test_account_summary_names_the_accounts_partner(
    sandbox: httpx.AsyncClient, state: SandboxState, owner: str, partner_id: str
) -> None:
    account = state.seed_account(partner=owner, organization_name="Sunrise Bakery")
    token = state.mint_user_token(account.encoded_account_id)

    response = await sandbox.get(
        "/v3/account/summary", headers={"authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    validate_response("/account/summary", "get", 200, response.json())
    assert response.json()["encoded_account_id"] == account.encoded_account_id
    assert response.json()["encoded_partner_id"] == partner_id
    assert response.json()["organization_name"] == "Sunrise Bakery"
    assert response.json()["contact_email"] == account.contact_email


async def test_account_summary_follows_a_move_between_partners(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    account = state.seed_account(partner="none")
    headers = {"authorization": f"Bearer {state.mint_user_token(account.encoded_account_id)}"}

    state.move(account.encoded_account_id, "ours")
    response = await sandbox.get("/v3/account/summary", headers=headers)

    assert response.json()["encoded_partner_id"] == OUR_ENCODED_PARTNER_ID


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Bearer "])
async def test_account_summary_without_a_valid_user_token_is_401(
    sandbox: httpx.AsyncClient, ours: dict[str, str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}

    assert_unauthorized(await sandbox.get("/v3/account/summary", headers=headers))
    partner_jwt = {"authorization": ours["authorization"]}
    assert_unauthorized(await sandbox.get("/v3/account/summary", headers=partner_jwt))


# Rate limits


async def test_a_fifth_call_within_a_second_is_throttled_until_the_window_slides(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.set_limits(rate_per_second=4)

    statuses = [(await sandbox.get(ACCOUNTS, headers=ours)).status_code for _ in range(4)]
    throttled = await sandbox.get(ACCOUNTS, headers=ours)
    state.advance_clock(1)
    after = await sandbox.get(ACCOUNTS, headers=ours)

    assert statuses == [200] * 4
    assert throttled.status_code == 429
    assert throttled.json() == {"error_key": "throttled", "error_message": "Too Many Requests"}
    assert "retry-after" not in throttled.headers
    assert after.status_code == 200


async def test_limits_are_per_api_key(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str], theirs: dict[str, str]
) -> None:
    state.set_limits(rate_per_second=1)

    await sandbox.get(ACCOUNTS, headers=ours)

    assert (await sandbox.get(ACCOUNTS, headers=ours)).status_code == 429
    assert (await sandbox.get(ACCOUNTS, headers=theirs)).status_code == 200


async def test_the_daily_quota_resets_at_midnight_utc(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.set_limits(daily_quota=3)
    for _ in range(3):
        assert (await sandbox.get(ACCOUNTS, headers=ours)).status_code == 200

    exceeded = await sandbox.get(ACCOUNTS, headers=ours)
    now = state.now()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    state.advance_clock((midnight - now).total_seconds() - 1)
    fresh = {"x-api-key": OUR_PARTNER.api_key, "authorization": await partner_token(sandbox)}
    still = await sandbox.get(ACCOUNTS, headers=fresh)
    state.advance_clock(1)
    resumed = await sandbox.get(ACCOUNTS, headers=fresh)

    assert exceeded.status_code == 429
    assert exceeded.json() == {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
    assert "retry-after" not in exceeded.headers
    assert still.status_code == 429
    assert resumed.status_code == 200
    assert state.limits()["used_today"][OUR_PARTNER.api_key] == 1


async def test_account_summary_counts_against_the_apps_api_key(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    state.set_limits(rate_per_second=1)
    account = state.seed_account()
    headers = {"authorization": f"Bearer {state.mint_user_token(account.encoded_account_id)}"}

    first = await sandbox.get("/v3/account/summary", headers=headers)
    second = await sandbox.get("/v3/account/summary", headers=headers)

    assert (first.status_code, second.status_code) == (200, 429)


# Faults


async def test_a_503_window_defers_creates_until_it_ends(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.add_fault("unavailable", "create", seconds=60)

    first = await sandbox.post(ACCOUNTS, json=create_body("deferred_one"), headers=ours)
    retried = await sandbox.post(ACCOUNTS, json=create_body("deferred_one"), headers=ours)
    other = await sandbox.post(ACCOUNTS, json=create_body("deferred_two"), headers=ours)
    during = state.find_by_login("deferred_one")
    state.advance_clock(60)
    after_window = await sandbox.post(ACCOUNTS, json=create_body("deferred_one"), headers=ours)

    assert [first.status_code, retried.status_code, other.status_code] == [503, 503, 503]
    assert first.json() == [
        {"error_key": "partner.service.unavailable", "error_message": "Dependencies unavailable"}
    ]
    validate_response(ACCOUNTS, "post", 503, first.json())
    assert during is None
    assert after_window.status_code == 409
    one = state.find_by_login("deferred_one")
    two = state.find_by_login("deferred_two")
    assert one is not None
    assert two is not None
    assert one.seq < two.seq
    assert len(state.accounts) == 2


async def test_a_deferred_create_whose_login_got_taken_is_dropped(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    fault = state.add_fault("unavailable", "create")
    await sandbox.post(ACCOUNTS, json=create_body("contested"), headers=ours)
    taken = state.seed_account(login_name="Contested", partner="other")

    state.remove_fault(fault.id)
    state.settle()

    assert state.find_by_login("contested") is taken
    assert len(state.accounts) == 1
    assert state.deferred == []


async def test_an_invalid_body_in_a_503_window_is_not_provisioned_later(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.add_fault("unavailable", "create", count=1)

    response = await sandbox.post(ACCOUNTS, json=create_body("x"), headers=ours)
    state.settle()

    assert response.status_code == 503
    assert len(state.accounts) == 0


async def test_a_lost_response_creates_the_account_and_the_hang_ends_with_the_client(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.add_fault("lost_response", "create", count=1)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await sandbox.post(ACCOUNTS, json=create_body("lost_one"), headers=ours)

    assert state.find_by_login("lost_one") is not None
    assert state.hanging_requests == 0
    [call] = state.calls.calls(ACCOUNTS, "POST")
    assert (call.status, call.fault) == (201, "lost_response")
    retry = await sandbox.post(ACCOUNTS, json=create_body("lost_one"), headers=ours)
    assert retry.status_code == 409


async def test_latency_delays_the_answer(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.add_fault("latency", "list", count=1, delay_seconds=0.3)

    started = time.monotonic()
    slow = await sandbox.get(ACCOUNTS, headers=ours)
    slow_elapsed = time.monotonic() - started

    assert slow.status_code == 200
    assert slow_elapsed >= 0.3


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("throttle", 429, {"error_key": "throttled", "error_message": "Too Many Requests"}),
        ("quota", 429, {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}),
        (
            "server_error",
            500,
            [{"error_key": errors.SERVER_ERROR_KEY, "error_message": errors.SERVER_ERROR_MESSAGE}],
        ),
        (
            "unavailable",
            503,
            [
                {
                    "error_key": errors.UNAVAILABLE_ERROR_KEY,
                    "error_message": "Dependencies unavailable",
                }
            ],
        ),
    ],
)
async def test_a_counted_fault_fails_that_many_calls_of_its_operation_only(
    sandbox: httpx.AsyncClient,
    state: SandboxState,
    ours: dict[str, str],
    kind: str,
    status: int,
    body: object,
) -> None:
    account = state.seed_account()
    state.add_fault(kind, "plan", count=2)
    plan = plan_path(account.encoded_account_id)

    listed = await sandbox.get(ACCOUNTS, headers=ours)
    failed = [await sandbox.get(plan, headers=ours) for _ in range(2)]
    recovered = await sandbox.get(plan, headers=ours)

    assert listed.status_code == 200
    assert [response.status_code for response in failed] == [status, status]
    assert failed[0].json() == body
    assert "retry-after" not in failed[0].headers
    assert recovered.status_code == 200


async def test_a_fault_window_ends_with_sandbox_time(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.add_fault("server_error", "all", seconds=30)

    during = await sandbox.get(ACCOUNTS, headers=ours)
    state.advance_clock(30)
    after = await sandbox.get(ACCOUNTS, headers=ours)

    assert (during.status_code, after.status_code) == (500, 200)


async def test_a_token_fault_fails_the_token_call(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    state.add_fault("unavailable", "token", count=1)

    response = await sandbox.post(
        "/oauth2/token",
        params=TOKEN_PARAMS,
        auth=(OUR_PARTNER.client_id, OUR_PARTNER.client_secret),
        headers=FORM,
    )

    assert response.status_code == 503
    assert await partner_token(sandbox)


async def test_a_summary_fault_fails_account_summary(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    account = state.seed_account()
    headers = {"authorization": f"Bearer {state.mint_user_token(account.encoded_account_id)}"}
    state.add_fault("server_error", "summary", count=1)

    failed = await sandbox.get("/v3/account/summary", headers=headers)
    recovered = await sandbox.get("/v3/account/summary", headers=headers)

    assert (failed.status_code, recovered.status_code) == (500, 200)


# Control API


async def test_the_control_api_is_absent_when_control_is_off(state: SandboxState) -> None:
    transport = httpx.ASGITransport(app=create_sandbox_app(state, control=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        response = await client.get("/_sandbox/")
        seeded = await client.post("/_sandbox/accounts", json={"count": 1})

    assert response.status_code == 404
    assert seeded.status_code == 404
    assert len(state.accounts) == 0


async def test_control_seeds_finds_and_moves_accounts(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    one = await sandbox.post(
        "/_sandbox/accounts",
        json={"login_name": "Bakery_1", "partner": "none", "billing_status": "Open"},
    )
    bulk = await sandbox.post(
        "/_sandbox/accounts", json={"count": 3, "partner": "other", "login_prefix": "shop"}
    )
    account_id = one.json()["encoded_account_id"]
    by_login = await sandbox.get("/_sandbox/accounts", params={"login_name": "bakery_1"})
    by_partner = await sandbox.get("/_sandbox/accounts", params={"partner": "other"})
    moved = await sandbox.put(f"/_sandbox/accounts/{account_id}/partner", json={"partner": "ours"})
    fetched = await sandbox.get(f"/_sandbox/accounts/{account_id}")

    assert one.status_code == 201
    assert one.json()["partner"] is None
    assert one.json()["plan_type"] == "BRONZE"
    assert bulk.json()["count"] == 3
    assert by_login.json()["accounts"][0]["encoded_account_id"] == account_id
    assert [item["login_name"] for item in by_partner.json()["accounts"]] == [
        "shop1",
        "shop2",
        "shop3",
    ]
    assert moved.json()["partner"] == "ours"
    assert fetched.json()["partner"] == "ours"
    assert (await sandbox.get("/_sandbox/accounts/a0nonexisten")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"partner": "someone"},
        {"billing_status": "Active"},
        {"plan_type": "PLATINUM"},
        {"encoded_account_id": "b0123456789a"},
        {"count": -1},
    ],
)
async def test_control_refuses_bad_seeds(sandbox: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await sandbox.post("/_sandbox/accounts", json=body)

    assert response.status_code == 400
    assert "error" in response.json()


async def test_control_refuses_a_taken_login_name(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post("/_sandbox/accounts", json={"login_name": "taken_name"})

    response = await sandbox.post("/_sandbox/accounts", json={"login_name": "TAKEN_NAME"})

    assert response.status_code == 409


async def test_control_mints_user_tokens(sandbox: httpx.AsyncClient, state: SandboxState) -> None:
    account = state.seed_account()

    minted = await sandbox.post(f"/_sandbox/accounts/{account.encoded_account_id}/user-tokens")
    summary = await sandbox.get(
        "/v3/account/summary", headers={"authorization": f"Bearer {minted.json()['access_token']}"}
    )
    unknown = await sandbox.post("/_sandbox/accounts/a0nonexisten/user-tokens")

    assert minted.status_code == 201
    assert summary.json()["encoded_account_id"] == account.encoded_account_id
    assert unknown.status_code == 404


async def test_control_reads_filters_and_clears_the_call_log(
    sandbox: httpx.AsyncClient, ours: dict[str, str]
) -> None:
    await sandbox.get(ACCOUNTS, headers=ours)
    await sandbox.get(ACCOUNTS, headers={"x-api-key": "wrong"})

    partner_calls = (await sandbox.get("/_sandbox/calls", params={"path_prefix": "/v3/"})).json()
    every_call = (await sandbox.get("/_sandbox/calls")).json()
    cleared = await sandbox.delete("/_sandbox/calls")
    after = (await sandbox.get("/_sandbox/calls")).json()

    assert [(call["status"], call["api_key"]) for call in partner_calls["calls"]] == [
        (200, OUR_PARTNER.api_key),
        (401, "wrong"),
    ]
    assert every_call["calls"][0]["path"] == "/oauth2/token"
    assert {"method", "path", "status", "at", "api_key"} <= set(every_call["calls"][0])
    assert cleared.status_code == 204
    assert after == {"calls": []}


async def test_control_sets_and_clears_faults(
    sandbox: httpx.AsyncClient, ours: dict[str, str]
) -> None:
    added = await sandbox.post(
        "/_sandbox/faults", json={"kind": "server_error", "operation": "list", "count": 5}
    )
    failing = await sandbox.get(ACCOUNTS, headers=ours)
    listed = (await sandbox.get("/_sandbox/faults")).json()["faults"]
    removed = await sandbox.delete(f"/_sandbox/faults/{added.json()['id']}")
    recovered = await sandbox.get(ACCOUNTS, headers=ours)
    bad = await sandbox.post("/_sandbox/faults", json={"kind": "meteor"})
    await sandbox.post("/_sandbox/faults", json={"kind": "throttle"})
    cleared = await sandbox.delete("/_sandbox/faults")

    assert added.status_code == 201
    assert failing.status_code == 500
    assert listed[0]["remaining"] == 4
    assert removed.status_code == 204
    assert recovered.status_code == 200
    assert bad.status_code == 400
    assert cleared.status_code == 204
    assert (await sandbox.get(ACCOUNTS, headers=ours)).status_code == 200


async def test_control_moves_the_clock_sets_limits_and_voids_tokens(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    before = state.now()

    advanced = await sandbox.post("/_sandbox/clock/advance", json={"seconds": 90})
    limits = await sandbox.put("/_sandbox/limits", json={"rate_per_second": 2, "daily_quota": 7})
    expired = await sandbox.post("/_sandbox/tokens/expire")
    rejected = await sandbox.get(ACCOUNTS, headers=ours)
    backwards = await sandbox.post("/_sandbox/clock/advance", json={"seconds": -1})

    assert datetime.fromisoformat(advanced.json()["now"]) - before == timedelta(seconds=90)
    assert limits.json()["rate_per_second"] == 2
    assert limits.json()["daily_quota"] == 7
    assert (state.limiter.rate_per_second, state.limiter.daily_quota) == (2, 7)
    assert expired.status_code == 204
    assert rejected.status_code == 401
    assert backwards.status_code == 400
    assert (await sandbox.post("/_sandbox/tokens/revoke")).status_code == 204


async def test_control_reset_empties_the_sandbox(
    sandbox: httpx.AsyncClient, state: SandboxState, ours: dict[str, str]
) -> None:
    state.seed_accounts(3)
    state.add_fault("throttle")

    response = await sandbox.post("/_sandbox/reset")

    assert response.json()["accounts"] == 0
    assert state.faults.faults() == []
    assert (await sandbox.get(ACCOUNTS, headers=ours)).status_code == 401


async def test_demo_seed_has_ours_a_canceled_one_theirs_and_an_unaffiliated_one(
    sandbox: httpx.AsyncClient, state: SandboxState
) -> None:
    demo = seed_demo(state)
    seed_demo(state)

    partners = [item.account.partner for item in demo]
    statuses = {item.account.billing_status for item in demo if item.account.partner == "ours"}
    assert partners.count("ours") >= 2
    assert {"other", None} <= set(partners)
    assert "Canceled" in statuses
    assert len(state.accounts) == len(demo)
    unaffiliated = next(item for item in demo if item.account.partner is None)
    summary = await sandbox.get(
        "/v3/account/summary", headers={"authorization": f"Bearer {unaffiliated.user_token}"}
    )
    assert summary.json()["encoded_partner_id"] == ""


# Served on a real socket


async def test_running_sandbox_serves_over_tcp_and_a_lost_response_ends_with_the_client() -> None:
    state = SandboxState(rate_per_second=1_000)
    with running_sandbox(state) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await partner_token(client)
            headers = {"x-api-key": OUR_PARTNER.api_key, "authorization": token}
            state.add_fault("lost_response", "create", count=1)

            with pytest.raises(httpx.ReadTimeout):
                await client.post(
                    ACCOUNTS, json=create_body("lost_tcp"), headers=headers, timeout=0.3
                )

            assert state.find_by_login("lost_tcp") is not None

            async def hanging() -> int:
                return state.hanging_requests

            await poll_until(hanging, lambda count: count == 0, timeout=5)
            listed = await client.get(ACCOUNTS, headers=headers)
            assert listed.status_code == 200
