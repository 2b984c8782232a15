"""Events out: record one delivery per receiver and queue its job, in the caller's transaction.

`client.status_changed` is emitted by the status store for every change; `provisioning.finished`
when a provisioning request ends. Nothing is emitted without receivers (`WEBHOOK_URLS`) and a
signing secret (`WEBHOOK_SECRET`): an unsigned webhook would be worse than none.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import NotFound
from app.events import repository
from app.events.models import DeliveryState, EventType, WebhookDelivery
from app.settings import WebhookSettings

log = structlog.get_logger(__name__)

DELIVER_TASK = "events.deliver"
QUEUE = "events"
QUEUEING_LOCK_PREFIX = "events-delivery-"


class _Config:
    """The settings the status store and provisioning emit with; set once per process at start
    (the API's lifespan, the worker), because the status store is called without settings."""

    settings: WebhookSettings | None = None


class DeliveryNotFound(NotFound):
    type_slug = "webhook-delivery-not-found"
    title = "No such webhook delivery"


def configure(settings: WebhookSettings | None) -> None:
    """Set (or clear) the receivers and secret this process emits events with."""
    _Config.settings = settings


def signing_secret(settings: WebhookSettings | None) -> str | None:
    """The Standard Webhooks secret, or None when unset or empty."""
    if settings is None or settings.secret is None:
        return None
    value = settings.secret.get_secret_value().strip()
    return value or None


def _enabled() -> WebhookSettings | None:
    settings = _Config.settings
    if settings is None or not settings.urls or signing_secret(settings) is None:
        return None
    return settings


async def emit(
    session: AsyncSession,
    event_type: EventType,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
) -> list[WebhookDelivery]:
    """Record the event for every receiver and queue the deliveries (flushes, never commits)."""
    settings = _enabled()
    if settings is None:
        return []
    event_id = f"msg_{uuid.uuid4().hex}"
    payload = {
        "type": event_type.value,
        "timestamp": (at or utcnow()).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    now = utcnow()
    deliveries = []
    for url in settings.urls:
        delivery = await repository.add(
            session,
            WebhookDelivery(
                event_id=event_id,
                event_type=event_type.value,
                url=url,
                payload=payload,
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
            ),
        )
        await defer_delivery(session, delivery.id, at=now)
        deliveries.append(delivery)
    log.info(
        "events.emit.queued",
        event_id=event_id,
        event_type=event_type.value,
        receivers=len(deliveries),
    )
    return deliveries


async def defer_delivery(session: AsyncSession, delivery_id: int, *, at: datetime) -> None:
    """Queue the job that attempts this delivery, in the session's transaction."""
    from app.kit.jobs import job_app as worker_app

    raw = await (await session.connection()).get_raw_connection()
    deferrer = worker_app.configure_task(
        name=DELIVER_TASK,
        queue=QUEUE,
        connection=raw.driver_connection,
        queueing_lock=f"{QUEUEING_LOCK_PREFIX}{delivery_id}",
        schedule_at=at,
    )
    try:
        async with session.begin_nested():
            await deferrer.defer_async(delivery_id=delivery_id)
    except AlreadyEnqueued:
        # A job for this delivery is already waiting; it re-reads the row when it runs.
        pass


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
    await emit(
        session,
        EventType.CLIENT_STATUS_CHANGED,
        {
            "encoded_account_id": encoded_account_id,
            "from_status": from_status,
            "to_status": to_status,
            "reason": reason,
            "source": source,
            "actor": actor,
            "status_event_id": status_event_id,
            "audit_run_id": audit_run_id,
        },
    )


async def provisioning_finished(
    session: AsyncSession,
    *,
    provisioning_request_id: int,
    state: str,
    encoded_account_id: str | None,
    error: str | None,
) -> None:
    """`provisioning.finished` when a provisioning request reaches a terminal state."""
    await emit(
        session,
        EventType.PROVISIONING_FINISHED,
        {
            "provisioning_request_id": provisioning_request_id,
            "state": state,
            "encoded_account_id": encoded_account_id,
            "error": error,
        },
    )


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
    log.info("events.redeliver.queued", delivery_id=delivery.id, event_id=delivery.event_id, by=by)
    return delivery
