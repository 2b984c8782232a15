"""Webhooks out: status changes reach a receiver that was down, signed, retried, deduplicable."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership
from app.clients.models import EventSource, VerifiedVia
from app.settings import Settings
from app.webhooks.models import WebhookDelivery
from tests.conftest import TEST_FERNET_KEY, ApiKeyFactory, build_settings
from tests.kit.polling import poll_until
from tests.webhooks.receiver import Receiver, running_receiver

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(down_for=3)


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with running_receiver(receiver) as url:
        yield url


@pytest.fixture
def settings(database_url: str, hook_url: str) -> Settings:
    return build_settings(
        database_url,
        webhook={
            "urls": [hook_url],
            "secret": SECRET,
            "retry_base_seconds": 0.1,
            "retry_cap_seconds": 0.3,
            "timeout_seconds": 2.0,
        },
        provision={
            "encryption_keys": [TEST_FERNET_KEY],
            "worker_concurrency": 2,
            "worker_poll_seconds": 0.05,
        },
    )


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """The production worker (`partnergate worker`), in-process, polling often."""
    from app.worker.main import run_worker

    task = asyncio.create_task(run_worker(settings, install_signal_handlers=False))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _deliveries(sessionmaker: async_sessionmaker[AsyncSession]) -> list[WebhookDelivery]:
    async with sessionmaker() as session:
        rows = await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return list(rows.scalars())


async def test_a_receiver_down_for_a_while_gets_every_status_change_signed_and_once_per_id(
    worker: None,
    receiver: Receiver,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
) -> None:
    accounts = ["a0webhook0001", "a0webhook0002"]
    async with sessionmaker() as session, session.begin():
        for account in accounts:
            await clients_service.record_evidence(
                session,
                account,
                Evidence(Membership.OURS, VerifiedVia.PARTNER_LIST, reason="in_partner_list"),
                clients_service.Actor(EventSource.AUDIT, name="test"),
            )

    delivered = await poll_until(
        lambda: _deliveries(sessionmaker),
        lambda rows: len(rows) == 2 and all(row.state == "delivered" for row in rows),
        timeout=20.0,
    )

    assert sum(row.attempts for row in delivered) == 3 + 2  # three 503s, then one success each
    assert all(row.last_status_code == 200 for row in delivered)
    verifier = Webhook(SECRET)
    for request in receiver.received:
        verified = verifier.verify(request.body, request.headers)
        assert verified["type"] == "client.status_changed"
    ok = [r for r in receiver.received if r.answered == 200]
    by_id = {r.headers["webhook-id"]: json.loads(r.body) for r in ok}
    assert {body["data"]["encoded_account_id"] for body in by_id.values()} == set(accounts)
    assert {row.event_id for row in delivered} == set(by_id)

    decider = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_DECIDE)}"}
    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}
    first = delivered[0]
    again = await client.post(f"/v1/webhook-deliveries/{first.id}/redeliver", headers=decider)
    assert again.status_code == 202

    await poll_until(
        lambda: _deliveries(sessionmaker),
        lambda rows: rows[0].state == "delivered" and rows[0].attempts == first.attempts + 1,
        timeout=10.0,
    )
    repeats = [r for r in receiver.received if r.headers["webhook-id"] == first.event_id]
    assert [r.answered for r in repeats][-2:] == [200, 200]  # the same id twice: dedupe by it
    listed = (await client.get("/v1/webhook-deliveries", headers=reader)).json()
    assert {item["event_id"] for item in listed["items"]} == set(by_id)
    assert listed["next_cursor"] is None
    assert (
        await client.post(f"/v1/webhook-deliveries/{first.id}/redeliver", headers=reader)
    ).status_code == 403
