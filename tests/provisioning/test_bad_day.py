"""Provisioning on a bad day at CTCT (issue 11, defects 1-5): a partner list slower than an
attempt, a spent deadline, a lease outlived, an unreadable success. Each ends, once, with the
truth; nothing loops."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.evidence import MirroredAttributes
from app.kit.crypto import PasswordCipher
from app.provisioning import attempt_flow, transitions
from app.provisioning.resources import ProvisioningResources
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.kit.polling import poll_until
from tests.provisioning.conftest import (
    WorkerStarter,
    body_for,
    create_calls,
    provisioning_settings,
    sandbox_accounts,
    table_rows,
    unique_login,
)
from tests.provisioning.test_outcomes import location_id, state_of

LIST_PATH = "/v3/partner/accounts"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return provisioning_settings(
        database_url, provision={"lease_seconds": 4.0, "reconcile_interval_seconds": 0.2}
    )


def list_calls(state: SandboxState) -> int:
    return len(state.calls.calls(LIST_PATH, "GET"))


def _execute(database_url: str, statement: str) -> None:
    import psycopg

    from app.db import libpq_url

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


async def _accepted_unknown(api: httpx.AsyncClient, login: str) -> int:
    """POST a create whose first send ends with an unknown outcome; the request's id."""
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["outcome_unknown"] is True
    return location_id(accepted)


async def test_a_partner_list_slower_than_an_attempt_is_read_to_its_end_without_looping(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    worker: WorkerStarter,
) -> None:
    """Defect 1: the paged scan ran inside the attempt's bound; its TimeoutError released the
    request for "now" and the job ran again at once, forever."""
    sandbox_state.seed_accounts(1_000, login_prefix="listed")
    sandbox_state.add_fault("lost_response", "create", count=1)
    login = unique_login()
    request_id = await _accepted_unknown(api, login)
    # 20 pages at 0.25 s each: longer than the 3 s an attempt may take inside its 4 s lease.
    sandbox_state.add_fault("latency", "list", delay_seconds=0.25)

    await worker()
    final = await poll_until(
        lambda: state_of(api, request_id),
        lambda state: state["state"] != "pending" or state["attempts"] > 3,
        timeout=60,
        interval=0.5,
    )

    assert final["state"] == "succeeded", final
    assert final["result"]["reconciled"] is True
    assert final["attempts"] == 1
    assert len(create_calls_of(sandbox_state)) == 1
    assert list_calls(sandbox_state) <= 2 * 21


def create_calls_of(state: SandboxState) -> list[Any]:
    return state.calls.calls(LIST_PATH, "POST")


async def test_past_the_deadline_an_unknown_outcome_ends_after_one_last_look_not_a_spin(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    worker: WorkerStarter,
    database_url: str,
) -> None:
    """Defect 3: past `deadline_at` the next attempt was "now", and a failed list check never
    reached the give-up: a spin on the database."""
    sandbox_state.add_fault("server_error", "create", count=1)
    login = unique_login()
    request_id = await _accepted_unknown(api, login)
    _execute(
        database_url,
        f"UPDATE provisioning_request SET deadline_at = now() - interval '1 second' "
        f"WHERE id = {request_id}",
    )
    sandbox_state.add_fault("unavailable", "list")

    await worker()
    final = await poll_until(
        lambda: state_of(api, request_id),
        lambda state: state["state"] != "pending" or state["attempts"] > 5,
        timeout=30,
        interval=0.5,
    )

    assert final["state"] == "needs_attention", final
    assert "partner list" in final["last_error"]
    assert final["attempts"] == 1
    assert list_calls(sandbox_state) <= 3


async def test_a_sender_whose_claim_was_taken_over_cannot_record_its_outcome(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    """Defect 4 (fencing): `succeed()` never checked that its claim was still held."""
    sandbox_state.add_fault("throttle", "create", count=1)
    login = unique_login()
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text
    request_id = location_id(accepted)
    _execute(
        database_url,
        "UPDATE provisioning_request SET next_attempt_at = now() - interval '1 second'",
    )
    async with sessionmaker() as session, session.begin():
        stale = await transitions.claim(session, request_id, lease_seconds=0.01)
    assert stale is not None
    # The lease ran out; the request was handed back and claimed by another sender.
    _execute(
        database_url,
        "UPDATE provisioning_request SET state = 'pending', lease_expires_at = NULL, "
        "next_attempt_at = now() - interval '1 second'",
    )
    async with sessionmaker() as session, session.begin():
        holder = await transitions.claim(session, request_id, lease_seconds=60)
    assert holder is not None

    async with sessionmaker() as session, session.begin():
        late = await transitions.succeed(
            session,
            stale,
            encoded_account_id="0123456789ab",
            provision_uuid=None,
            reconciled=False,
            attributes=MirroredAttributes(login_name=stale.login_name),
        )

    assert late is None
    rows = table_rows(database_url, "SELECT state, encoded_account_id FROM provisioning_request")
    assert rows == [("in_flight", None)]
    assert table_rows(database_url, "SELECT count(*) FROM client") == [(0,)]


async def test_a_whole_attempt_stays_inside_its_lease(
    api: httpx.AsyncClient,
    app: FastAPI,
    sandbox_state: SandboxState,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    """Defect 4 (the bound): list check + create + list check after a 409 each had a bound,
    the attempt as a whole had none, and outlasted its lease."""
    login = unique_login()
    sandbox_state.add_fault("server_error", "create", count=1)
    request_id = await _accepted_unknown(api, login)
    sandbox_state.seed_account(login_name=login, partner="other")
    sandbox_state.seed_accounts(150, login_prefix="ours")
    sandbox_state.add_fault("latency", "list", delay_seconds=0.9)
    _execute(
        database_url,
        "UPDATE provisioning_request SET next_attempt_at = now() - interval '1 second'",
    )
    p = ProvisioningResources(
        settings=settings,
        sessionmaker=sessionmaker,
        ctct=app.state.resources.ctct,
        cipher=PasswordCipher(settings.provision.encryption_keys),
    )

    started = time.monotonic()
    await attempt_flow.attempt(p, request_id, max_wait=1.0)
    elapsed = time.monotonic() - started

    assert elapsed < settings.provision.lease_seconds


class UnreadableSuccess(httpx.AsyncBaseTransport):
    """The sandbox, except that a create's 201 arrives with a body nobody can read."""

    def __init__(self, sandbox: httpx.AsyncBaseTransport) -> None:
        self.sandbox = sandbox

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.sandbox.handle_async_request(request)
        if request.method == "POST" and request.url.path == LIST_PATH:
            await response.aread()
            if response.status_code == 201:
                return httpx.Response(201, content=b"<html>proxy error</html>")
        return response


@pytest.fixture
async def garbling_api(
    settings: Settings, sandbox_transport: httpx.ASGITransport, provisioner_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    application = create_app(settings, ctct_transport=UnreadableSuccess(sandbox_transport))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://partnergate.test",
            headers={"Authorization": f"Bearer {provisioner_key}"},
        ) as http,
    ):
        yield http


async def test_an_unreadable_2xx_to_a_create_is_an_unknown_outcome_not_a_taken_login(
    garbling_api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    worker: WorkerStarter,
) -> None:
    """Defect 5: an unreadable 2xx was "not created"; a person's retry then got 409 and the
    request ended "login name taken" although the account was ours."""
    login = unique_login()
    first = await garbling_api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    request_id = first.json()["provisioning_request_id"] if first.status_code != 202 else None
    request_id = request_id or location_id(first)
    await worker()

    def ended(state: dict[str, Any]) -> bool:
        return state["state"] not in ("pending", "in_flight")

    state = await poll_until(lambda: state_of(garbling_api, request_id), ended, timeout=30)
    if state["state"] == "needs_attention":  # a person retries, as the problem suggests
        await garbling_api.post(f"/v1/provisioning/{request_id}/retry")
        state = await poll_until(
            lambda: state_of(garbling_api, request_id),
            lambda s: ended(s) and s["attempts"] > 1,
            timeout=30,
        )

    accounts = await sandbox_accounts(sandbox, login)
    assert len(accounts) == 1
    assert state["state"] == "succeeded", state
    assert state["encoded_account_id"] == accounts[0]["encoded_account_id"]
    assert len(await create_calls(sandbox)) == 1
