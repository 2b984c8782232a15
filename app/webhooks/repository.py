"""SQL for webhook events and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookEvent

SWEEP_BATCH = 500


async def add_event(session: AsyncSession, event: WebhookEvent) -> WebhookEvent:
    session.add(event)
    await session.flush()
    return event


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
