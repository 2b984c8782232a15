"""Outgoing webhooks: events written in the caller's transaction, fanned out by the worker.

`emit` records an event row and defers its fan-out job in the caller's transaction, so a change
and its event commit or roll back together, whatever the process's settings. The worker's
fan-out job writes one delivery per subscriber that asked for the event's type
(`app.webhooks.subscribers`; `WEBHOOK_URLS` seeds subscribers) and defers each delivery's job.
Every function here takes a session and never commits.

`client.status_changed` is emitted by the status store for every change (the fan-out adds
`allowed`, which depends on the worker's UNAFFILIATED_ACCESS); `provisioning.finished` when a
provisioning request ends; the operations events by `app.webhooks.operations`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import NotFound
from app.kit.jobs import defer_each_in_transaction, defer_in_transaction, locks_without_live_job
from app.kit.pagination import CursorCodec, Page
from app.settings import WebhookSettings
from app.webhooks import repository, subscribers
from app.webhooks.models import DeliveryState, EventType, WebhookDelivery, WebhookEvent
from app.webhooks.schemas import WebhookDeliveryOut

log = structlog.get_logger(__name__)

QUEUE = "webhooks"
FAN_OUT_TASK = "webhooks.fan_out"
DELIVER_TASK = "webhooks.deliver"
SWEEP_TASK = "webhooks.sweep"
_FAN_OUT_LOCK_PREFIX = "webhooks-event-"
_DELIVERY_LOCK_PREFIX = "webhooks-delivery-"
# A row this overdue whose job is gone lost it (a job that raised, a crash): the sweep's grace.
LOST_JOB_GRACE = timedelta(seconds=30)


class DeliveryNotFound(NotFound):
    type_slug = "webhook-delivery-not-found"
    title = "No such webhook delivery"


async def emit(
    session: AsyncSession,
    event_type: EventType,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
) -> WebhookEvent:
    """Record one event and queue its fan-out, in the session's transaction (never commits)."""
    event = await repository.add_event(session, WebhookEvent(**_new_event(event_type, data, at)))
    await defer_in_transaction(
        session,
        task=FAN_OUT_TASK,
        queue=QUEUE,
        queueing_lock=f"{_FAN_OUT_LOCK_PREFIX}{event.event_id}",
        event_id=event.event_id,
    )
    return event


async def emit_each(
    session: AsyncSession, event_type: EventType, datas: Sequence[dict[str, Any]]
) -> None:
    """`emit` for many events of one type at once: one insert and one deferral for all."""
    events = [_new_event(event_type, data, None) for data in datas]
    await repository.add_events(session, events)
    await defer_each_in_transaction(
        session,
        task=FAN_OUT_TASK,
        queue=QUEUE,
        jobs=[
            (f"{_FAN_OUT_LOCK_PREFIX}{event['event_id']}", {"event_id": event["event_id"]})
            for event in events
        ],
    )


def _new_event(event_type: EventType, data: dict[str, Any], at: datetime | None) -> dict[str, Any]:
    return {
        "event_id": f"msg_{uuid.uuid4().hex}",
        "event_type": event_type.value,
        "payload": {
            "type": event_type.value,
            "timestamp": (at or utcnow()).isoformat().replace("+00:00", "Z"),
            "data": data,
        },
    }


# Completes an event's payload at fan-out with what only the worker's settings know.
PayloadCompleter = Callable[[str, dict[str, Any]], dict[str, Any]]


async def fan_out(
    session: AsyncSession,
    event_id: str,
    settings: WebhookSettings,
    *,
    complete: PayloadCompleter | None = None,
) -> list[WebhookDelivery]:
    """One pending delivery (and job) per subscriber wanting an event not yet fanned out."""
    event = await repository.event(session, event_id, for_update=True)
    if event is None or event.fanned_out_at is not None:
        return []
    now = utcnow()
    event.fanned_out_at = now
    if complete is not None:
        data = complete(event.event_type, dict(event.payload.get("data", {})))
        event.payload = {**event.payload, "data": data}
    await subscribers.seed(session, settings)
    deliveries = []
    for subscriber in await subscribers.wanting(session, event.event_type, settings):
        delivery = await repository.add(
            session,
            WebhookDelivery(
                event_id=event.event_id,
                event_type=event.event_type,
                url=subscriber.url,
                subscriber_id=subscriber.id,
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


async def restore_lost_jobs(session: AsyncSession, *, grace: timedelta = LOST_JOB_GRACE) -> int:
    """Events not fanned out and pending deliveries, overdue, whose job is gone get one again."""
    before = utcnow() - grace
    restored = 0
    events = await repository.unfanned_events(session, created_before=before)
    locks = {f"{_FAN_OUT_LOCK_PREFIX}{event_id}": event_id for event_id in events}
    for lock in await locks_without_live_job(session, list(locks)):
        await defer_in_transaction(
            session, task=FAN_OUT_TASK, queue=QUEUE, queueing_lock=lock, event_id=locks[lock]
        )
        log.warning("webhooks.fan_out.job_restored", event_id=locks[lock])
        restored += 1
    deliveries = await repository.overdue_pending(session, due_before=before)
    by_lock = {f"{_DELIVERY_LOCK_PREFIX}{delivery_id}": delivery_id for delivery_id in deliveries}
    now = utcnow()
    for lock in await locks_without_live_job(session, list(by_lock)):
        await defer_delivery(session, by_lock[lock], at=now)
        log.warning("webhooks.deliver.job_restored", delivery_id=by_lock[lock])
        restored += 1
    return restored


def status_change(
    *,
    encoded_account_id: str,
    from_status: str | None,
    to_status: str,
    reason: str,
    source: str,
    actor: str | None,
    status_event_id: int,
    audit_run_id: int | None,
) -> dict[str, Any]:
    """The data of a `client.status_changed` event for one status event."""
    return {
        "encoded_account_id": encoded_account_id,
        "from_status": from_status,
        "to_status": to_status,
        "reason": reason,
        "source": source,
        "actor": actor,
        "status_event_id": status_event_id,
        "audit_run_id": audit_run_id,
    }


async def status_changed(session: AsyncSession, change: dict[str, Any]) -> None:
    """`client.status_changed` for one status event (`status_change`)."""
    await emit(session, EventType.CLIENT_STATUS_CHANGED, change)


async def statuses_changed(session: AsyncSession, changes: Sequence[dict[str, Any]]) -> None:
    """`client.status_changed` for many status events at once."""
    await emit_each(session, EventType.CLIENT_STATUS_CHANGED, changes)


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
