"""Events for operations: each emitted once per occurrence, with what a receiver needs to act."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import runner
from app.audit.models import AuditTrigger
from app.clients.models import ClientStatus
from app.ctct.budget import CallBudget
from app.ctct.client import build_ctct_client
from app.ctct.priorities import Priority
from app.kit.crypto import PasswordCipher
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import CtctSettings, Settings, WebhookSettings
from app.webhooks import delivery_flow, operations, subscribers
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType, SubscriberSource, WebhookEvent
from tests.audit.conftest import put_clients
from tests.conftest import FAST_CTCT, TEST_FERNET_KEY, build_settings
from tests.listing import audit
from tests.webhooks.receiver import Receiver, running_receiver

BOX = PasswordCipher([SecretStr(TEST_FERNET_KEY)])


async def _events(
    sessionmaker: async_sessionmaker[AsyncSession], event_type: EventType
) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(WebhookEvent.payload)
            .where(WebhookEvent.event_type == event_type.value)
            .order_by(WebhookEvent.id)
        )
        return [row[0]["data"] for row in rows]


# webhook.delivery_failing ----------------------------------------------------------------------


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(down_for=5)


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with running_receiver(receiver) as url:
        yield url


async def test_delivery_failing_is_sent_once_per_streak_of_failures(
    sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, hook_url: str
) -> None:
    settings = WebhookSettings(failing_after=3, max_attempts=100)
    async with sessionmaker() as session, session.begin():
        flaky = await subscribers.create(
            session,
            BOX,
            name="flaky",
            url=hook_url,
            event_types=["provisioning.finished"],
            source=SubscriberSource.API,
            created_by="test",
        )

    async def deliver_one() -> str | None:
        async with sessionmaker() as session, session.begin():
            event = await webhooks_service.emit(session, EventType.PROVISIONING_FINISHED, {})
            (delivery,) = await webhooks_service.fan_out(session, event.event_id, settings)
        async with httpx.AsyncClient() as http:
            return await delivery_flow.attempt(sessionmaker, http, settings, delivery.id, box=BOX)

    failing = EventType.WEBHOOK_DELIVERY_FAILING
    outcomes = [await deliver_one() for _ in range(5)]  # the receiver is down for 5 requests
    assert outcomes == ["pending"] * 5
    [first] = await _events(sessionmaker, failing)
    assert first["subscriber_id"] == flaky.subscriber.id
    assert (first["subscriber_name"], first["host"]) == ("flaky", "127.0.0.1")
    assert hook_url not in str(first)
    assert (first["consecutive_failures"], first["last_status_code"]) == (3, 503)

    assert await deliver_one() == "delivered"  # the streak ends
    async with sessionmaker() as session:
        healthy = await subscribers.get(session, flaky.subscriber.id)
        assert (healthy.consecutive_failures, healthy.failing_since) == (0, None)
    receiver.down_for = len(receiver.received) + 3
    for _ in range(3):
        await deliver_one()

    assert len(await _events(sessionmaker, failing)) == 2


# ctct.quota_low --------------------------------------------------------------------------------


async def test_quota_low_is_sent_once_per_utc_day_across_processes(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = [datetime(2026, 12, 10, 9, 0, tzinfo=UTC)]
    settings = CtctSettings(
        rate_per_second=1000.0, daily_quota=20, interactive_reserve=0, quota_low_threshold=10
    )
    one, two = (
        CallBudget(
            engine,
            settings,
            clock=lambda: now[0],
            on_quota_low=operations.announce_quota_low,
        )
        for _ in range(2)
    )

    for _ in range(9):
        await one.acquire(Priority.INTERACTIVE)
    assert await _events(sessionmaker, EventType.CTCT_QUOTA_LOW) == []
    await one.acquire(Priority.INTERACTIVE)  # 10 used, 10 left
    for budget in (two, one, two):
        await budget.acquire(Priority.INTERACTIVE)
    [low] = await _events(sessionmaker, EventType.CTCT_QUOTA_LOW)
    assert low == {
        "day": "2026-12-10",
        "used": 10,
        "daily_quota": 20,
        "remaining": 10,
        "threshold": 10,
        "resets_at": "2026-12-11T00:00:00Z",
    }

    now[0] += timedelta(days=1)
    for _ in range(11):
        await two.acquire(Priority.INTERACTIVE)
    assert [event["day"] for event in await _events(sessionmaker, EventType.CTCT_QUOTA_LOW)] == [
        "2026-12-10",
        "2026-12-11",
    ]


async def test_quota_low_is_off_at_threshold_zero(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    settings = CtctSettings(
        rate_per_second=1000.0, daily_quota=3, interactive_reserve=0, quota_low_threshold=0
    )
    budget = CallBudget(engine, settings)
    for _ in range(3):
        await budget.acquire(Priority.INTERACTIVE)
    assert await _events(sessionmaker, EventType.CTCT_QUOTA_LOW) == []


# audit.demotions_held --------------------------------------------------------------------------


@pytest.fixture
def audit_settings(database_url: str) -> Settings:
    return build_settings(database_url, ctct=FAST_CTCT, audit={"max_demotion_ratio": 0.1})


async def test_demotions_held_is_sent_once_by_the_run_that_holds_them(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    audit_settings: Settings,
    sandbox: SandboxState,
) -> None:
    listed = [account.encoded_account_id for account in sandbox.seed_accounts(5)]
    await put_clients(
        sessionmaker, [*listed, "a0gone000001", "a0gone000002"], ClientStatus.APPROVED
    )
    async with sessionmaker() as session, session.begin():
        await subscribers.create(
            session,
            BOX,
            name="oncall",
            url="http://oncall.test/hook",
            event_types=["audit.demotions_held"],
            source=SubscriberSource.API,
            created_by="test",
        )
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    async with build_ctct_client(
        audit_settings.ctct,
        engine=engine,
        transport=transport,
        on_quota_low=operations.announce_quota_low,
    ) as ctct:
        run = await runner.run_once(sessionmaker, audit_settings, ctct, trigger=AuditTrigger.CLI)

    assert run is not None
    assert run.state == "held"
    [held] = await _events(sessionmaker, EventType.AUDIT_DEMOTIONS_HELD)
    assert held == {
        "audit_run_id": run.id,
        "held_demotions": 2,
        "approved_clients": 7,
        "max_demotion_ratio": 0.1,
        "audit_url": f"/v1/audits/{run.id}",
        "confirm_url": f"/v1/audits/{run.id}/confirm-demotions",
        "reject_url": f"/v1/audits/{run.id}/reject-demotions",
    }
    async with sessionmaker() as session, session.begin():
        event = (
            await session.execute(
                select(WebhookEvent).where(
                    WebhookEvent.event_type == EventType.AUDIT_DEMOTIONS_HELD.value
                )
            )
        ).scalar_one()
        deliveries = await webhooks_service.fan_out(session, event.event_id, WebhookSettings())
    assert [d.url for d in deliveries] == ["http://oncall.test/hook"]

    sandbox.seed_accounts(60)  # enough listed approved clients that two missing are few
    await audit(sessionmaker, engine, audit_settings, sandbox)
    assert len(await _events(sessionmaker, EventType.AUDIT_DEMOTIONS_HELD)) == 1
