"""No job failure strands a delivery (defect 7 of issue 11): a bad secret or a receiver's odd
reply is a failed attempt with its next one queued, and the sweep restores any job that is gone."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.db import utcnow
from app.settings import WebhookSettings
from app.webhooks import delivery_flow, repository
from app.webhooks import service as webhooks_service
from app.webhooks.models import DeliveryState, EventType

HOOK = "http://receiver.test/hook"
GOOD_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
BAD_SECRET = "whsec_!!!not-base64"


def _settings(secret: str) -> WebhookSettings:
    return WebhookSettings(urls=[HOOK], secret=secret, retry_base_seconds=30)


def _receiver(body: bytes, status: int = 200) -> httpx.AsyncClient:
    async def hook(request: Request) -> Response:
        await request.body()
        return Response(body, status_code=status, media_type="text/plain")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


async def _one_delivery(
    sessionmaker: async_sessionmaker[AsyncSession], settings: WebhookSettings
) -> int:
    async with sessionmaker() as session, session.begin():
        event = await webhooks_service.emit(
            session, EventType.PROVISIONING_FINISHED, {"provisioning_request_id": 1}
        )
        deliveries = await webhooks_service.fan_out(session, event.event_id, settings)
    return deliveries[0].id


async def _waiting_jobs(sessionmaker: async_sessionmaker[AsyncSession], delivery_id: int) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE queueing_lock = :lock AND status = 'todo'"
            ),
            {"lock": f"webhooks-delivery-{delivery_id}"},
        )
    return int(count or 0)


async def test_a_secret_that_is_not_base64_is_a_failed_attempt_with_the_next_one_queued(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = _settings(BAD_SECRET)
    delivery_id = await _one_delivery(sessionmaker, settings)

    async with _receiver(b"ok") as http:
        state = await delivery_flow.attempt(sessionmaker, http, settings, delivery_id)

    async with sessionmaker() as session:
        row = await repository.get(session, delivery_id)
    assert row is not None
    assert state == DeliveryState.PENDING.value
    assert row.attempts == 1
    assert row.last_error is not None
    assert "WEBHOOK_SECRET" in row.last_error
    assert "not-base64" not in row.last_error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > utcnow()
    assert await _waiting_jobs(sessionmaker, delivery_id) == 1


async def test_a_reply_containing_nul_is_recorded_without_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = _settings(GOOD_SECRET)
    delivery_id = await _one_delivery(sessionmaker, settings)

    async with _receiver(b"ok\x00then nothing") as http:
        state = await delivery_flow.attempt(sessionmaker, http, settings, delivery_id)

    async with sessionmaker() as session:
        row = await repository.get(session, delivery_id)
    assert row is not None
    assert state == DeliveryState.DELIVERED.value
    assert row.last_response is not None
    assert "\x00" not in row.last_response
    assert row.last_response.startswith("ok")


async def test_the_sweep_gives_a_pending_delivery_whose_job_failed_a_job_again(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = _settings(GOOD_SECRET)
    delivery_id = await _one_delivery(sessionmaker, settings)
    async with sessionmaker() as session, session.begin():
        # The job died of something nobody foresaw; the row is overdue.
        await session.execute(text("UPDATE procrastinate_jobs SET status = 'failed'"))
        row = await repository.get(session, delivery_id, for_update=True)
        assert row is not None
        row.next_attempt_at = utcnow() - timedelta(minutes=5)
    assert await _waiting_jobs(sessionmaker, delivery_id) == 0

    async with sessionmaker() as session, session.begin():
        restored = await webhooks_service.restore_lost_jobs(session)

    assert restored == 1
    assert await _waiting_jobs(sessionmaker, delivery_id) == 1
    async with _receiver(b"ok") as http:
        state = await delivery_flow.attempt(sessionmaker, http, settings, delivery_id)
    assert state == DeliveryState.DELIVERED.value
