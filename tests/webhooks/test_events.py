"""Events are rows written with the change they report; the worker's settings decide receivers."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership
from app.clients.models import EventSource, VerifiedVia
from app.settings import WebhookSettings
from app.webhooks import delivery_flow
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType, WebhookDelivery, WebhookEvent

RECEIVERS = WebhookSettings(urls=["http://a.test/hook", "http://b.test/hook"], secret="whsec_x")


async def _count(session: AsyncSession, model: type[WebhookEvent] | type[WebhookDelivery]) -> int:
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def _jobs(session: AsyncSession) -> list[tuple[str, str]]:
    rows = await session.execute(
        text("SELECT task_name, queueing_lock FROM procrastinate_jobs ORDER BY id")
    )
    return [(row[0], row[1]) for row in rows]


async def _ours(session: AsyncSession, account: str) -> None:
    await clients_service.record_evidence(
        session,
        account,
        Evidence(Membership.OURS, VerifiedVia.PARTNER_LIST, reason="in_partner_list"),
        clients_service.Actor(EventSource.AUDIT, name="test"),
    )


async def test_a_status_change_writes_its_event_and_fan_out_job_in_the_same_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await _ours(session, "a0events0001")
    async with sessionmaker() as session:
        event = (await session.execute(select(WebhookEvent))).scalar_one()
        jobs = await _jobs(session)

    assert event.event_type == EventType.CLIENT_STATUS_CHANGED.value
    assert event.event_id.startswith("msg_")
    assert event.payload["data"]["encoded_account_id"] == "a0events0001"
    assert event.fanned_out_at is None
    assert jobs == [(webhooks_service.FAN_OUT_TASK, f"webhooks-event-{event.event_id}")]


async def test_a_rolled_back_change_leaves_neither_event_nor_job(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await _ours(session, "a0events0002")
        await session.rollback()
    async with sessionmaker() as session:
        assert await _count(session, WebhookEvent) == 0
        assert await _jobs(session) == []


async def test_fan_out_writes_one_delivery_per_receiver_once_with_a_job_each(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        event = await webhooks_service.emit(session, EventType.PROVISIONING_FINISHED, {"n": 1})
    async with sessionmaker() as session, session.begin():
        first = await webhooks_service.fan_out(session, event.event_id, RECEIVERS)
    async with sessionmaker() as session, session.begin():
        again = await webhooks_service.fan_out(session, event.event_id, RECEIVERS)
    async with sessionmaker() as session:
        rows = (await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
        jobs = await _jobs(session)

    assert [d.url for d in first] == RECEIVERS.urls
    assert again == []
    assert len(rows) == 2
    assert {d.event_id for d in first} == {event.event_id}
    assert all(d.payload == event.payload and d.state == "pending" for d in first)
    assert jobs[1:] == [(webhooks_service.DELIVER_TASK, f"webhooks-delivery-{d.id}") for d in first]


@pytest.mark.parametrize(
    "settings",
    [
        WebhookSettings(urls=[], secret="whsec_x"),
        WebhookSettings(urls=["http://a.test/hook"], secret=None),
        WebhookSettings(urls=["http://a.test/hook"], secret="  "),
    ],
    ids=["no-urls", "no-secret", "blank-secret"],
)
async def test_without_receivers_and_a_secret_an_event_is_fanned_out_to_nobody(
    sessionmaker: async_sessionmaker[AsyncSession], settings: WebhookSettings
) -> None:
    async with sessionmaker() as session, session.begin():
        event = await webhooks_service.emit(session, EventType.PROVISIONING_FINISHED, {"n": 1})
    async with sessionmaker() as session, session.begin():
        assert await webhooks_service.fan_out(session, event.event_id, settings) == []
    async with sessionmaker() as session:
        assert await _count(session, WebhookDelivery) == 0
        stored = await session.get(WebhookEvent, event.id)
        assert stored is not None
        assert stored.fanned_out_at is not None


def test_retries_wait_at_least_the_base_and_at_most_base_times_4_to_the_n_capped() -> None:
    settings = WebhookSettings(retry_base_seconds=5.0, retry_cap_seconds=3600.0)
    rng = random.Random(7)
    for failed, ceiling in [(1, 5.0), (2, 20.0), (3, 80.0), (6, 3600.0), (40, 3600.0)]:
        delays = [delivery_flow.retry_delay(failed, settings, rng) for _ in range(200)]
        assert all(5.0 <= delay <= ceiling for delay in delays), failed
        if ceiling > 5.0:
            assert max(delays) > 5.0 + (ceiling - 5.0) / 2  # jittered over the whole range
