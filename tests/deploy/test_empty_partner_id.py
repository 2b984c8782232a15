"""`CTCT_PARTNER_ID=""` (what compose's `${CTCT_PARTNER_ID:-}` passes) is no partner id.

With an empty id taken for our own, an account summary naming any partner read as "another
partner's": when the plan call could not answer, one of our own accounts was demoted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from app.main import create_app
from app.sandbox.app import CONTROL_PREFIX, create_sandbox_app
from app.sandbox.partners import OUR_ENCODED_PARTNER_ID
from app.sandbox.state import SandboxState
from tests.conftest import FAST_CTCT, ApiKeyFactory, build_settings


@pytest.fixture
def sandbox_http(sandbox: SandboxState) -> httpx.AsyncClient:
    """The sandbox's control API, as an operator (or a test harness) drives it."""
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    return httpx.AsyncClient(transport=transport, base_url=f"http://sandbox.test{CONTROL_PREFIX}")


@pytest.fixture
async def app_with_empty_partner_id(
    database_url: str, sandbox: SandboxState, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    monkeypatch.setenv("CTCT_PARTNER_ID", "")
    settings = build_settings(database_url, ctct=FAST_CTCT)
    application = create_app(
        settings, ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox))
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_with_an_empty_partner_id_our_account_stays_approved_when_the_plan_call_fails(
    app_with_empty_partner_id: FastAPI, sandbox_http: httpx.AsyncClient, api_key: ApiKeyFactory
) -> None:
    key = await api_key(Scope.CLIENTS_REGISTER, Scope.ACCESS_CHECK)
    transport = httpx.ASGITransport(app=app_with_empty_partner_id)
    async with (
        sandbox_http,
        httpx.AsyncClient(
            transport=transport,
            base_url="http://partnergate.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as api,
    ):
        seeded = await sandbox_http.post("/accounts", json={"partner": "ours"})
        account_id = seeded.json()["encoded_account_id"]

        async def register() -> httpx.Response:
            minted = await sandbox_http.post(f"/accounts/{account_id}/user-tokens", json={})
            token = minted.json()["access_token"]
            return await api.post(
                "/v1/clients", json={"encoded_account_id": account_id, "access_token": token}
            )

        first = await register()
        assert first.status_code == 201
        assert first.json()["status"] == "approved"

        fault = await sandbox_http.post(
            "/faults", json={"kind": "unavailable", "operation": "plan", "count": 10}
        )
        assert fault.status_code == 201
        again = await register()

        assert again.status_code == 200
        assert again.json()["status"] == "approved"
        assert again.json()["encoded_partner_id"] == OUR_ENCODED_PARTNER_ID
        decision = await api.get(f"/v1/access/{account_id}")
        assert decision.json()["allowed"] is True
