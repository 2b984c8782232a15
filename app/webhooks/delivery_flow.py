"""Attempting one webhook delivery (a flow): sign it per Standard Webhooks, POST it, record it.

`attempt` opens its own transactions, and the POST happens outside any: read the row, send with
the worker's one HTTP client, then record the outcome (and queue the next attempt with backoff)
in one short transaction.
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
from app.kit.backoff import backoff_delay
from app.settings import WebhookSettings
from app.webhooks import repository, service
from app.webhooks.models import DeliveryState

log = structlog.get_logger(__name__)

RESPONSE_EXCERPT_CHARS = 500
USER_AGENT = "partnergate-webhooks/1"


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
    """WEBHOOK_SECRET is not a Standard Webhooks secret (`whsec_` + base64)."""


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`."""
    try:
        signature = Webhook(secret).sign(event_id, at, body)
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


async def _send(
    http: httpx.AsyncClient, secret: str | None, url: str, event_id: str, body: str
) -> tuple[int | None, str | None, str | None]:
    """POST one signed delivery: (status, response excerpt, error), never an exception.

    Whatever goes wrong (the receiver, the network, our own secret) is a failed attempt that
    is recorded and retried with backoff: a delivery is never left pending without a job.
    """
    if secret is None:
        return None, None, "WEBHOOK_SECRET is unset: nothing is delivered unsigned"
    try:
        headers = signed_headers(secret, event_id, body, datetime.now(UTC))
        response = await http.post(url, content=body, headers=headers)
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
) -> str | None:
    """Try one delivery once; returns its state afterwards (None if there was nothing to do)."""
    secret = service.signing_secret(settings)
    async with sessionmaker() as session:
        delivery = await repository.get(session, delivery_id)
    if delivery is None or delivery.state != DeliveryState.PENDING.value:
        return None
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    status, excerpt, error = await _send(http, secret, delivery.url, delivery.event_id, body)
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
            delay = retry_delay(row.attempts, settings, rng)
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
        log.info("webhooks.deliver.succeeded", **fields)
    elif state == DeliveryState.FAILED.value:
        log.warning("webhooks.deliver.gave_up", **fields)
    else:
        log.info("webhooks.deliver.retrying", next_attempt_at=str(row.next_attempt_at), **fields)
    return state
