"""Attempting one webhook delivery (a flow): sign it per Standard Webhooks, POST it, record it.

`attempt` opens its own transactions, and the POST happens outside any: read the row, send with
the worker's one HTTP client, then record the outcome (and queue the next attempt with backoff)
in one short transaction.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.db import utcnow
from app.kit.backoff import backoff_delay
from app.settings import WebhookSettings
from app.webhooks import operations, repository, service, subscribers
from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscriber

log = structlog.get_logger(__name__)

RESPONSE_EXCERPT_CHARS = 500
USER_AGENT = "partnergate-webhooks/1"
UNSIGNABLE_ERROR = (
    "no signing secret (WEBHOOK_SECRET unset or undecryptable): nothing is delivered unsigned"
)


def build_http(settings: WebhookSettings) -> httpx.AsyncClient:
    """The one HTTP client deliveries are POSTed with (built at worker start; close it)."""
    return httpx.AsyncClient(timeout=settings.timeout_seconds, follow_redirects=False)


def retry_delay(attempts: int, settings: WebhookSettings, rng: random.Random | None) -> float:
    """Seconds before the next try after `attempts` failed ones: at least the base, at most
    base * 4**(attempts-1) capped."""
    return backoff_delay(
        attempts - 1,
        base=settings.retry_base_seconds,
        cap=settings.retry_cap_seconds,
        floor=settings.retry_base_seconds,
        factor=4.0,
        rng=rng,
    )


class SecretUnusable(ValueError):
    """A signing secret is not a Standard Webhooks secret (`whsec_` + base64)."""


def signed_headers(
    secrets: str | Sequence[str], event_id: str, body: str, at: datetime
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`: one signature per secret, space-separated
    (a receiver accepts the delivery if any of them verifies)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    try:
        signature = " ".join(Webhook(key).sign(event_id, at, body) for key in keys)
    except (ValueError, TypeError):
        # Never the secret itself in the message: it ends up in the row and the logs.
        raise SecretUnusable(
            "WEBHOOK_SECRET is not a Standard Webhooks secret (whsec_ followed by base64)"
        ) from None
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def storable(value: str) -> str:
    """`value` cut to the excerpt size, without the NUL characters Postgres text refuses."""
    return value.replace("\x00", "\ufffd")[:RESPONSE_EXCERPT_CHARS]


async def _load(
    sessionmaker: async_sessionmaker[AsyncSession], delivery_id: int
) -> tuple[WebhookDelivery | None, WebhookSubscriber | None]:
    async with sessionmaker() as session:
        delivery = await repository.get(session, delivery_id)
        if delivery is None or delivery.subscriber_id is None:
            return delivery, None
        return delivery, await repository.any_subscriber(session, delivery.subscriber_id)


async def _post(
    http: httpx.AsyncClient, delivery: WebhookDelivery, keys: Sequence[str]
) -> tuple[int | None, str | None, str | None]:
    """(status, response excerpt, error) of one POST, outside any transaction; never raises.

    Whatever goes wrong (the receiver, the network, our own secret) is a failed attempt that
    is recorded and retried with backoff: a delivery is never left pending without a job.
    """
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    try:
        headers = signed_headers(keys, delivery.event_id, body, datetime.now(UTC))
        response = await http.post(delivery.url, content=body, headers=headers)
        return response.status_code, storable(response.text), None
    except SecretUnusable as exc:
        return None, None, str(exc)
    except Exception as exc:  # a receiver's odd reply or a broken connection: one failed try
        log.warning("webhooks.deliver.send_failed", error_type=type(exc).__name__)
        return None, None, storable(f"{type(exc).__name__}: {exc}")


async def attempt(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: WebhookSettings,
    delivery_id: int,
    *,
    rng: random.Random | None = None,
    box: subscribers.SecretBox | None = None,
) -> str | None:
    """Try one delivery once; returns its state afterwards (None if there was nothing to do)."""
    delivery, subscriber = await _load(sessionmaker, delivery_id)
    if delivery is None or delivery.state != DeliveryState.PENDING.value:
        return None
    status: int | None = None
    excerpt: str | None = None
    error: str | None = subscribers.REMOVED_ERROR
    if subscriber is None or subscriber.deleted_at is None:
        keys = subscribers.secrets_of(subscriber, box, settings)
        if keys:
            status, excerpt, error = await _post(http, delivery, keys)
        else:  # a failed attempt with its next one queued, not a row left without a job
            log.warning("webhooks.deliver.unsigned", delivery_id=delivery_id)
            error = UNSIGNABLE_ERROR
    delivered = status is not None and 200 <= status < 300
    async with sessionmaker() as session, session.begin():
        row = await repository.get(session, delivery_id, for_update=True)
        if row is None or row.state != DeliveryState.PENDING.value:
            return None
        row.attempts += 1
        row.last_status_code = status
        row.last_response = excerpt
        row.last_error = error
        row.updated_at = utcnow()
        if delivered:
            row.state = DeliveryState.DELIVERED.value
            row.delivered_at = row.updated_at
            row.next_attempt_at = None
        elif row.attempts >= settings.max_attempts or error == subscribers.REMOVED_ERROR:
            row.state = DeliveryState.FAILED.value
            row.next_attempt_at = None
        else:
            delay = retry_delay(row.attempts, settings, rng)
            row.next_attempt_at = row.updated_at + timedelta(seconds=delay)
            await service.defer_delivery(session, row.id, at=row.next_attempt_at)
        await session.flush()
        if subscriber is not None and subscriber.deleted_at is None:
            await _count(session, settings, subscriber, row, delivered=delivered)
        state = row.state
        fields = {
            "delivery_id": row.id,
            "event_id": row.event_id,
            "event_type": row.event_type,
            "subscriber_id": row.subscriber_id,
            "attempt": row.attempts,
            "status": status,
            "error": error,
        }
    if delivered:
        log.info("webhooks.deliver.succeeded", **fields)
    elif state == DeliveryState.FAILED.value:
        log.warning("webhooks.deliver.gave_up", **fields)
    else:
        log.info("webhooks.deliver.retrying", next_attempt_at=str(row.next_attempt_at), **fields)
    return state


async def _count(
    session: AsyncSession,
    settings: WebhookSettings,
    subscriber: WebhookSubscriber,
    row: WebhookDelivery,
    *,
    delivered: bool,
) -> None:
    """Keep the subscriber's failure streak; the attempt that makes it failing says so once."""
    assert row.updated_at is not None
    if delivered:
        await subscribers.record_success(session, subscriber.id, at=row.updated_at)
        return
    if not await subscribers.record_failure(session, subscriber.id, settings, at=row.updated_at):
        return
    log.warning(
        "webhooks.subscriber.failing", subscriber_id=subscriber.id, failures=settings.failing_after
    )
    await operations.delivery_failing(
        session,
        subscriber_id=subscriber.id,
        subscriber_name=subscriber.name,
        url=subscriber.url,
        consecutive_failures=settings.failing_after,
        since=row.updated_at,
        delivery_id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
    )
