"""Attempting one webhook delivery: sign it per Standard Webhooks, POST it, record the answer.

The POST happens outside any transaction: read the row, send, then record the outcome (and
queue the next attempt with backoff) in one short transaction.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app.db import utcnow
from app.events import repository, service
from app.events.models import DeliveryState
from app.settings import WebhookSettings

log = structlog.get_logger(__name__)

RESPONSE_EXCERPT_CHARS = 500
USER_AGENT = "partnergate-webhooks/1"


def retry_delay(attempt: int, settings: WebhookSettings, rng: random.Random) -> float:
    """Seconds before attempt `attempt + 1`: base * 4**(attempt-1), capped, with 10% jitter."""
    delay = min(settings.retry_cap_seconds, settings.retry_base_seconds * 4.0 ** (attempt - 1))
    return float(delay * (1 + rng.uniform(0, 0.1)))


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def attempt(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: WebhookSettings,
    delivery_id: int,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
) -> str | None:
    """Try one delivery once; returns its state afterwards (None if there was nothing to do)."""
    secret = service.signing_secret(settings)
    async with sessionmaker() as session:
        delivery = await repository.get(session, delivery_id)
    if delivery is None or delivery.state != DeliveryState.PENDING.value:
        return None
    if secret is None:
        log.warning("events.deliver.unsigned_skipped", delivery_id=delivery_id)
        return None
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    now = datetime.now(UTC)
    status: int | None = None
    excerpt: str | None = None
    error: str | None = None
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=settings.timeout_seconds, follow_redirects=False
        ) as http:
            response = await http.post(
                delivery.url,
                content=body,
                headers=signed_headers(secret, delivery.event_id, body, now),
            )
        status = response.status_code
        excerpt = response.text[:RESPONSE_EXCERPT_CHARS]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT_CHARS]
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
        elif row.attempts >= settings.max_attempts:
            row.state = DeliveryState.FAILED.value
            row.next_attempt_at = None
        else:
            delay = retry_delay(row.attempts, settings, rng or random.Random())  # noqa: S311
            row.next_attempt_at = row.updated_at + timedelta(seconds=delay)
            await service.defer_delivery(session, row.id, at=row.next_attempt_at)
        await session.flush()
        state = row.state
        fields = {
            "delivery_id": row.id,
            "event_id": row.event_id,
            "event_type": row.event_type,
            "attempt": row.attempts,
            "status": status,
            "error": error,
        }
    if delivered:
        log.info("events.deliver.succeeded", **fields)
    elif state == DeliveryState.FAILED.value:
        log.warning("events.deliver.gave_up", **fields)
    else:
        log.info("events.deliver.retrying", next_attempt_at=str(row.next_attempt_at), **fields)
    return state
