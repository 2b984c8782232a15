"""Outgoing webhooks: events written in the caller's transaction, fanned out by the worker.

`emit` records an event row and defers its fan-out job in the caller's transaction, so a change
and its event commit or roll back together, whatever the process's settings. The worker's
fan-out job, which has the settings, writes one delivery per receiver (`WEBHOOK_URLS`) and defers
each delivery's job; nothing is delivered without a signing secret (`WEBHOOK_SECRET`): an
unsigned webhook would be worse than none. Every function here takes a session and never commits.

`client.status_changed` is emitted by the status store for every change; `provisioning.finished`
when a provisioning request ends.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import NotFound
from app.kit.jobs import defer_in_transaction
from app.kit.pagination import CursorCodec, Page
from app.settings import WebhookSettings
from app.webhooks import repository
from app.webhooks.models import DeliveryState, EventType, WebhookDelivery, WebhookEvent
from app.webhooks.schemas import (
    ClientStatusChangedData,
    ProvisioningFinishedData,
    WebhookDeliveryOut,
)

log = structlog.get_logger(__name__)

QUEUE = "webhooks"
FAN_OUT_TASK = "webhooks.fan_out"
DELIVER_TASK = "webhooks.deliver"
_FAN_OUT_LOCK_PREFIX = "webhooks-event-"
_DELIVERY_LOCK_PREFIX = "webhooks-delivery-"


class DeliveryNotFound(NotFound):
    type_slug = "webhook-delivery-not-found"
    title = "No such webhook delivery"


def signing_secret(settings: WebhookSettings) -> str | None:
    """The Standard Webhooks secret, or None when unset or empty."""
    if settings.secret is None:
        return None
    value = settings.secret.get_secret_value().strip()
    return value or None


def receivers(settings: WebhookSettings) -> list[str]:
    """The URLs events are delivered to: none unless a signing secret is set."""
    return list(settings.urls) if signing_secret(settings) is not None else []


async def emit(
    session: AsyncSession,
    event_type: EventType,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
) -> WebhookEvent:
    """Record one event and queue its fan-out, in the session's transaction (never commits)."""
    event = await repository.add_event(
        session,
        WebhookEvent(
            event_id=f"msg_{uuid.uuid4().hex}",
            event_type=event_type.value,
            payload={
                "type": event_type.value,
                "timestamp": (at or utcnow()).isoformat().replace("+00:00", "Z"),
                "data": data,
            },
        ),
    )
    await defer_in_transaction(
        session,
        task=FAN_OUT_TASK,
        queue=QUEUE,
        queueing_lock=f"{_FAN_OUT_LOCK_PREFIX}{event.event_id}",
        event_id=event.event_id,
    )
    return event


async def fan_out(
    session: AsyncSession, event_id: str, settings: WebhookSettings
) -> list[WebhookDelivery]:
    """One pending delivery per receiver of an event not yet fanned out, each with its job."""
    event = await repository.event(session, event_id, for_update=True)
    if event is None or event.fanned_out_at is not None:
        return []
    now = utcnow()
    event.fanned_out_at = now
    deliveries = []
    for url in receivers(settings):
        delivery = await repository.add(
            session,
            WebhookDelivery(
                event_id=event.event_id,
                event_type=event.event_type,
                url=url,
                payload=event.payload,
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
            ),
        )
        await defer_delivery(session, delivery.id, at=now)
        deliveries.append(delivery)
    await session.flush()
    if deliveries:
        log.info(
            "webhooks.fan_out.queued",
            event_id=event.event_id,
            event_type=event.event_type,
            receivers=len(deliveries),
        )
    return deliveries


async def defer_delivery(session: AsyncSession, delivery_id: int, *, at: datetime) -> None:
    """Queue the job that attempts this delivery, in the session's transaction."""
    await defer_in_transaction(
        session,
        task=DELIVER_TASK,
        queue=QUEUE,
        queueing_lock=f"{_DELIVERY_LOCK_PREFIX}{delivery_id}",
        schedule_at=at,
        delivery_id=delivery_id,
    )


async def status_changed(
    session: AsyncSession,
    *,
    encoded_account_id: str,
    from_status: str | None,
    to_status: str,
    reason: str,
    source: str,
    actor: str | None,
    status_event_id: int,
    audit_run_id: int | None,
) -> None:
    """`client.status_changed` for one status event."""
    data = ClientStatusChangedData(
        encoded_account_id=encoded_account_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        source=source,
        actor=actor,
        status_event_id=status_event_id,
        audit_run_id=audit_run_id,
    )
    await emit(session, EventType.CLIENT_STATUS_CHANGED, data.model_dump(mode="json"))


async def provisioning_finished(
    session: AsyncSession,
    *,
    provisioning_request_id: int,
    state: str,
    encoded_account_id: str | None,
    error: str | None,
) -> None:
    """`provisioning.finished` when a provisioning request reaches a terminal state."""
    data = ProvisioningFinishedData(
        provisioning_request_id=provisioning_request_id,
        state=state,
        encoded_account_id=encoded_account_id,
        error=error,
    )
    await emit(session, EventType.PROVISIONING_FINISHED, data.model_dump(mode="json"))


async def redeliver(session: AsyncSession, delivery_id: int, *, by: str) -> WebhookDelivery:
    """Send a delivery again (same webhook id, so receivers can deduplicate)."""
    delivery = await repository.get(session, delivery_id, for_update=True)
    if delivery is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    now = utcnow()
    delivery.state = DeliveryState.PENDING.value
    delivery.next_attempt_at = now
    delivery.updated_at = now
    await session.flush()
    await defer_delivery(session, delivery.id, at=now)
    log.info(
        "webhooks.redeliver.queued", delivery_id=delivery.id, event_id=delivery.event_id, by=by
    )
    return delivery


async def deliveries(
    session: AsyncSession,
    cursors: CursorCodec,
    *,
    limit: int,
    cursor: str | None,
    state: DeliveryState | None,
    event_type: EventType | None,
) -> Page[WebhookDeliveryOut]:
    """One page of deliveries, newest first, optionally of one state and event type."""
    state_value = state.value if state else None
    type_value = event_type.value if event_type else None
    scope = ("webhook-deliveries", state_value, type_value)
    position = cursors.decode(scope, cursor)
    rows = await repository.page(
        session,
        limit=limit + 1,
        before_id=int(position[0]) if position else None,
        state=state_value,
        event_type=type_value,
    )
    return cursors.page(
        rows,
        limit=limit,
        scope=scope,
        position_of=lambda row: (row.id,),
        item=WebhookDeliveryOut.model_validate,
    )
