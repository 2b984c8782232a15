"""SQL for webhook events and deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.webhooks.models import WebhookDelivery, WebhookEvent


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
