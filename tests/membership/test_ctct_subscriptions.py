"""Once partnergate has subscribed its receiver through CTCT's endpoints, the sandbox sends the
topic's notifications there: signed, verified and applied like any CTCT webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from app.ctct.partner_webhooks import PartnerWebhooks
from app.sandbox import webhooks
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.state import AppState
from tests.conftest import Headers
from tests.membership.test_ctct_webhooks import RECEIVER, SANDBOX, gate_settings


@pytest.fixture
def sandbox_app(sandbox: SandboxState) -> Starlette:
    return create_sandbox_app(sandbox)


@pytest.fixture
async def gate(database_url: str, sandbox_app: Starlette) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(
        gate_settings(database_url), ctct_transport=httpx.ASGITransport(app=sandbox_app)
    )
    async with application.router.lifespan_context(application):
        webhooks.set_delivery_transport(sandbox_app, httpx.ASGITransport(app=application))
        yield application


@pytest.fixture
async def control(sandbox_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX) as http:
        yield http


@pytest.fixture
async def api(gate: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http


async def test_the_sandbox_notifies_the_subscribed_receiver_which_applies_it(
    gate: FastAPI,
    control: httpx.AsyncClient,
    api: httpx.AsyncClient,
    sandbox: SandboxState,
    registrar: Headers,
    reader: Headers,
) -> None:
    account = sandbox.seed_account(plan_type="GOLD", billing_status="Open")
    registered = await api.post(
        "/v1/clients", json={"encoded_account_id": account.encoded_account_id}, headers=registrar
    )
    assert registered.json()["status"] == "approved"
    resources: AppState = gate.state.resources
    await PartnerWebhooks(resources.ctct).subscribe(3, RECEIVER)

    sent = await control.post(
        "/_sandbox/webhooks/send",
        json={"topic_id": 3, "encoded_account_id": account.encoded_account_id},
    )
    unsubscribed = await control.post(
        "/_sandbox/webhooks/send",
        json={"topic_id": 2, "encoded_account_id": account.encoded_account_id},
    )

    assert sent.status_code == 200, sent.text
    assert (sent.json()["url"], sent.json()["status_code"]) == (RECEIVER, 200)
    client = await api.get(f"/v1/clients/{account.encoded_account_id}", headers=reader)
    assert client.json()["billing_status"] == "Canceled"
    assert unsubscribed.status_code == 409
    log = (await control.get("/_sandbox/webhooks/subscriptions")).json()
    assert log["subscriptions"] == [{"partner": "ours", "topic_id": 3, "hook_uri": RECEIVER}]
    assert [(s["topic_id"], s["status"], s["test"]) for s in log["sent"]] == [(3, 200, False)]
