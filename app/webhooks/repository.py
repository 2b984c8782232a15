"""SQL for webhook events, deliveries and subscribers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import any_, case, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.webhooks.models import (
    EVERY_EVENT_TYPE,
    DeliveryState,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscriber,
)

SWEEP_BATCH = 500


async def add_event(session: AsyncSession, event: WebhookEvent) -> WebhookEvent:
    session.add(event)
    await session.flush()
    return event


async def add_events(session: AsyncSession, events: Sequence[dict[str, Any]]) -> None:
    """Insert many events (column values each) in one statement."""
    if events:
        await session.execute(insert(WebhookEvent), list(events))


async def event(
    session: AsyncSession, event_id: str, *, for_update: bool = False
) -> WebhookEvent | None:
    statement = (
        select(WebhookEvent)
        .where(WebhookEvent.event_id == event_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def add(session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
    session.add(delivery)
    await session.flush()
    return delivery


async def get(
    session: AsyncSession, delivery_id: int, *, for_update: bool = False
) -> WebhookDelivery | None:
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def page(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None,
    state: str | None,
    event_type: str | None,
) -> Sequence[WebhookDelivery]:
    """Up to `limit` deliveries newest first, older than `before_id` when given."""
    statement = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(WebhookDelivery.id < before_id)
    if state is not None:
        statement = statement.where(WebhookDelivery.state == state)
    if event_type is not None:
        statement = statement.where(WebhookDelivery.event_type == event_type)
    return (await session.execute(statement)).scalars().all()


# Subscribers -----------------------------------------------------------------------------------


async def add_subscriber(session: AsyncSession, subscriber: WebhookSubscriber) -> WebhookSubscriber:
    session.add(subscriber)
    await session.flush()
    return subscriber


async def subscriber(
    session: AsyncSession, subscriber_id: int, *, for_update: bool = False
) -> WebhookSubscriber | None:
    """A live subscriber (not removed) by id."""
    statement = (
        select(WebhookSubscriber)
        .where(WebhookSubscriber.id == subscriber_id, WebhookSubscriber.deleted_at.is_(None))
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def any_subscriber(session: AsyncSession, subscriber_id: int) -> WebhookSubscriber | None:
    """A subscriber by id, removed or not."""
    statement = (
        select(WebhookSubscriber)
        .where(WebhookSubscriber.id == subscriber_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def live_subscriber_named(session: AsyncSession, name: str) -> WebhookSubscriber | None:
    statement = select(WebhookSubscriber).where(
        WebhookSubscriber.name == name, WebhookSubscriber.deleted_at.is_(None)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def live_subscriber_at(session: AsyncSession, url: str) -> WebhookSubscriber | None:
    statement = select(WebhookSubscriber).where(
        WebhookSubscriber.url == url, WebhookSubscriber.deleted_at.is_(None)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def urls_ever_subscribed(session: AsyncSession, urls: Sequence[str]) -> set[str]:
    """Which of `urls` any subscriber (live or removed) has had."""
    if not urls:
        return set()
    statement = select(WebhookSubscriber.url).where(WebhookSubscriber.url.in_(list(urls)))
    return set((await session.execute(statement)).scalars().all())


async def seed_subscriber(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a seeded subscriber unless a live one has its name or URL (a concurrent seed)."""
    try:
        async with session.begin_nested():
            await session.execute(insert(WebhookSubscriber).values(**values))
    except IntegrityError:
        return


async def subscribers_wanting(
    session: AsyncSession, event_type: str, *, with_env_secret: bool
) -> Sequence[WebhookSubscriber]:
    """Live subscribers that asked for `event_type` (or every type) and can sign, oldest first."""
    statement = (
        select(WebhookSubscriber)
        .where(
            WebhookSubscriber.deleted_at.is_(None),
            or_(
                literal(event_type) == any_(WebhookSubscriber.event_types),
                literal(EVERY_EVENT_TYPE) == any_(WebhookSubscriber.event_types),
            ),
        )
        .order_by(WebhookSubscriber.id)
    )
    if not with_env_secret:
        statement = statement.where(WebhookSubscriber.secret_ciphertext.is_not(None))
    return (await session.execute(statement)).scalars().all()


async def page_subscribers(
    session: AsyncSession, *, limit: int, after_id: int | None
) -> Sequence[WebhookSubscriber]:
    """Live subscribers oldest first, after `after_id`."""
    statement = (
        select(WebhookSubscriber)
        .where(WebhookSubscriber.deleted_at.is_(None))
        .order_by(WebhookSubscriber.id)
        .limit(limit)
    )
    if after_id is not None:
        statement = statement.where(WebhookSubscriber.id > after_id)
    return (await session.execute(statement)).scalars().all()


async def fail_pending_deliveries(
    session: AsyncSession, subscriber_id: int, *, error: str, now: datetime
) -> int:
    """End every pending delivery of a subscriber as failed (it was removed)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscriber_id == subscriber_id,
            WebhookDelivery.state == DeliveryState.PENDING.value,
        )
        .values(
            state=DeliveryState.FAILED.value, last_error=error, next_attempt_at=None, updated_at=now
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def count_failure(
    session: AsyncSession, subscriber_id: int, *, threshold: int, now: datetime
) -> tuple[int, bool]:
    """One more failed delivery in a row: (the streak, whether it just crossed `threshold`).

    The crossing is decided in one statement on the locked row, so concurrent failures of one
    subscriber cross it once.
    """
    row = (
        await session.execute(
            update(WebhookSubscriber)
            .where(WebhookSubscriber.id == subscriber_id)
            .values(
                consecutive_failures=WebhookSubscriber.consecutive_failures + 1,
                failing_since=case(
                    (
                        (WebhookSubscriber.failing_since.is_(None))
                        & (WebhookSubscriber.consecutive_failures + 1 >= threshold),
                        now,
                    ),
                    else_=WebhookSubscriber.failing_since,
                ),
            )
            .returning(WebhookSubscriber.consecutive_failures, WebhookSubscriber.failing_since)
        )
    ).one_or_none()
    if row is None:
        return 0, False
    streak, since = row
    return int(streak), since == now


async def count_success(session: AsyncSession, subscriber_id: int, *, now: datetime) -> None:
    """A delivery succeeded: the failure streak (and any failing state) ends."""
    await session.execute(
        update(WebhookSubscriber)
        .where(WebhookSubscriber.id == subscriber_id)
        .values(consecutive_failures=0, failing_since=None, last_delivered_at=now)
    )


async def unfanned_events(session: AsyncSession, *, created_before: datetime) -> list[str]:
    """Ids of events not yet turned into deliveries, older than `created_before`."""
    statement = (
        select(WebhookEvent.event_id)
        .where(WebhookEvent.fanned_out_at.is_(None), WebhookEvent.created_at < created_before)
        .order_by(WebhookEvent.id)
        .limit(SWEEP_BATCH)
    )
    return list((await session.execute(statement)).scalars())


async def overdue_pending(session: AsyncSession, *, due_before: datetime) -> list[int]:
    """Ids of pending deliveries whose next attempt was due before `due_before`."""
    statement = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING.value,
            WebhookDelivery.next_attempt_at < due_before,
        )
        .order_by(WebhookDelivery.id)
        .limit(SWEEP_BATCH)
    )
    return list((await session.execute(statement)).scalars())
