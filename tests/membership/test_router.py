"""Registering an account and probing it again, through the API, with the sandbox as CTCT."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from app.sandbox.state import SandboxState
from tests.clients.support import assert_problem, status_of
from tests.conftest import Headers


async def test_register_probes_and_returns_201_then_200(
    sandboxed_client: httpx.AsyncClient, registrar: Headers, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours", plan_type="SILVER", billing_status="Open")
    body = {"encoded_account_id": account.encoded_account_id}

    first = await sandboxed_client.post("/v1/clients", json=body, headers=registrar)
    again = await sandboxed_client.post("/v1/clients", json=body, headers=registrar)

    assert first.status_code == 201, first.text
    assert first.json()["status"] == "approved"
    assert first.json()["plan_type"] == "SILVER"
    assert again.status_code == 200
    assert again.json()["encoded_account_id"] == account.encoded_account_id


async def test_the_user_token_is_used_once_and_never_stored_logged_or_echoed(
    sandboxed_client: httpx.AsyncClient,
    registrar: Headers,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = sandbox.seed_account(partner="none", organization_name="Solo LLC")
    token = sandbox.mint_user_token(account.encoded_account_id)

    with capture_logs() as logs:
        response = await sandboxed_client.post(
            "/v1/clients",
            json={"encoded_account_id": account.encoded_account_id, "access_token": token},
            headers=registrar,
        )

    assert response.status_code == 201
    assert response.json()["status"] == "unaffiliated"
    assert response.json()["organization_name"] == "Solo LLC"
    assert token not in response.text
    assert token not in repr(logs)
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert len(sandbox.calls.calls("/v3/account/summary")) == 1
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT row_to_json(c)::text FROM client c UNION ALL "
                "SELECT row_to_json(e)::text FROM status_event e"
            )
        )
        assert all(token not in row for row in rows.scalars())


async def test_a_token_for_another_account_is_a_400_and_nothing_is_stored(
    sandboxed_client: httpx.AsyncClient,
    registrar: Headers,
    reader: Headers,
    sandbox: SandboxState,
) -> None:
    account = sandbox.seed_account(partner="ours")
    other = sandbox.seed_account(partner="other")
    response = await sandboxed_client.post(
        "/v1/clients",
        json={
            "encoded_account_id": account.encoded_account_id,
            "access_token": sandbox.mint_user_token(other.encoded_account_id),
        },
        headers=registrar,
    )

    assert_problem(response, 400, "access_token")
    missing = await sandboxed_client.get(
        f"/v1/clients/{account.encoded_account_id}", headers=reader
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"encoded_account_id": ""},
        {"encoded_account_id": "has space"},
        {"encoded_account_id": "x" * 65},
        {"encoded_account_id": "ok", "surprise": 1},
        {},
    ],
)
async def test_register_rejects_bad_bodies(
    sandboxed_client: httpx.AsyncClient, registrar: Headers, body: dict[str, object]
) -> None:
    response = await sandboxed_client.post("/v1/clients", json=body, headers=registrar)
    assert_problem(response, 400)


async def test_ctct_down_registers_unverified_then_a_probe_approves(
    sandboxed_client: httpx.AsyncClient,
    registrar: Headers,
    decider: Headers,
    sandbox: SandboxState,
) -> None:
    account = sandbox.seed_account(partner="ours")
    fault = sandbox.add_fault("unavailable", "all", seconds=3600)
    body = {"encoded_account_id": account.encoded_account_id}

    first = await sandboxed_client.post("/v1/clients", json=body, headers=registrar)
    assert first.status_code == 201
    assert first.json()["status"] == "unverified"
    down = await sandboxed_client.post(
        f"/v1/clients/{account.encoded_account_id}/probe", headers=decider
    )
    assert_problem(down, 503)
    assert await status_of(sandboxed_client, decider, account.encoded_account_id) == "unverified"

    sandbox.remove_fault(fault.id)
    up = await sandboxed_client.post(
        f"/v1/clients/{account.encoded_account_id}/probe", headers=decider
    )

    assert up.status_code == 200
    assert up.json()["status"] == "approved"


async def test_a_forced_probe_of_an_unknown_client_is_404(
    sandboxed_client: httpx.AsyncClient, decider: Headers
) -> None:
    response = await sandboxed_client.post("/v1/clients/nobody/probe", headers=decider)
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("\x84\x00é\x86t", id="non-ascii-and-nul"),
        pytest.param("abc def", id="space"),
        pytest.param("t" * 8193, id="too-long"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
async def test_an_access_token_that_cannot_be_a_header_is_400_before_any_budget_is_spent(
    sandboxed_client: httpx.AsyncClient,
    registrar: Headers,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    token: str,
) -> None:
    # Issue 12: httpx could not encode such a token as a header: a 500, after a budget unit.
    account = sandbox.seed_account(partner="ours")

    body = {"encoded_account_id": account.encoded_account_id, "access_token": token}

    response = await sandboxed_client.post(
        "/v1/clients",
        content=json.dumps(body).encode(),  # ASCII-escaped, so a lone surrogate can be sent
        headers={**registrar, "content-type": "application/json"},
    )

    assert_problem(response, 400, "access_token")
    assert sandbox.calls.calls("/v3") == []
    async with sessionmaker() as session:
        spent = await session.execute(text("SELECT coalesce(sum(quota_used), 0) FROM ctct_budget"))
        assert spent.scalar_one() == 0
