"""Events for operations: something needs a person. Each is emitted once per occurrence, in the
transaction that records the occurrence, with what a receiver needs to act on it.

- `audit.demotions_held`: an audit would demote too many clients and holds them for a person;
- `provisioning.needs_attention`: a provisioning request ended where only a person can decide;
- `ctct.quota_low`: today's CTCT calls are running out (`CTCT_QUOTA_LOW_THRESHOLD`; once per
  UTC day and API key);
- `webhook.delivery_failing`: a subscriber's deliveries failed `WEBHOOK_FAILING_AFTER` times in a
  row (once, until a delivery to it succeeds again).

Their payloads are documented in the OpenAPI document's `webhooks` section
(`app.webhooks.docs`). Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.ctct.quota_alert import QuotaLow
from app.webhooks.models import EventType, WebhookEvent
from app.webhooks.service import emit


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def demotions_held(
    session: AsyncSession, *, audit_run_id: int, held: int, approved: int, max_ratio: float
) -> WebhookEvent:
    """An audit held `held` demotions (of `approved` approved clients) for a person."""
    return await emit(
        session,
        EventType.AUDIT_DEMOTIONS_HELD,
        {
            "audit_run_id": audit_run_id,
            "held_demotions": held,
            "approved_clients": approved,
            "max_demotion_ratio": max_ratio,
            "audit_url": f"/v1/audits/{audit_run_id}",
            "confirm_url": f"/v1/audits/{audit_run_id}/confirm-demotions",
            "reject_url": f"/v1/audits/{audit_run_id}/reject-demotions",
        },
    )


async def provisioning_needs_attention(
    session: AsyncSession,
    *,
    provisioning_request_id: int,
    api_key_name: str | None,
    login_name: str | None,
    encoded_account_id: str | None,
    attempts: int,
    error: str | None,
) -> WebhookEvent:
    """A provisioning request ended as `needs_attention`: a person must check, then retry."""
    return await emit(
        session,
        EventType.PROVISIONING_NEEDS_ATTENTION,
        {
            "provisioning_request_id": provisioning_request_id,
            "api_key_name": api_key_name,
            "login_name": login_name,
            "encoded_account_id": encoded_account_id,
            "attempts": attempts,
            "error": error,
            "request_url": f"/v1/provisioning/{provisioning_request_id}",
            "retry_url": f"/v1/provisioning/{provisioning_request_id}/retry",
        },
    )


async def quota_low(
    session: AsyncSession,
    *,
    day: date,
    used: int,
    daily_quota: int,
    threshold: int,
    resets_at: datetime,
) -> WebhookEvent:
    """Today's CTCT calls fell to `threshold` or fewer left."""
    return await emit(
        session,
        EventType.CTCT_QUOTA_LOW,
        {
            "day": day.isoformat(),
            "used": used,
            "daily_quota": daily_quota,
            "remaining": max(0, daily_quota - used),
            "threshold": threshold,
            "resets_at": _iso(resets_at),
        },
    )


async def announce_quota_low(session: AsyncSession, low: QuotaLow) -> WebhookEvent:
    """The CTCT budget's quota-low hook (wired by the entry points)."""
    return await quota_low(
        session,
        day=low.day,
        used=low.used,
        daily_quota=low.daily_quota,
        threshold=low.threshold,
        resets_at=low.resets_at,
    )


async def delivery_failing(
    session: AsyncSession,
    *,
    subscriber_id: int,
    subscriber_name: str,
    url: str,
    consecutive_failures: int,
    since: datetime,
    delivery_id: int,
    event_id: str,
    event_type: str,
    last_status_code: int | None,
    last_error: str | None,
) -> WebhookEvent:
    """A subscriber's deliveries keep failing."""
    return await emit(
        session,
        EventType.WEBHOOK_DELIVERY_FAILING,
        {
            "subscriber_id": subscriber_id,
            "subscriber_name": subscriber_name,
            # The host only: a hook URL may carry a token, and this event goes to others.
            "host": urlsplit(url).hostname,
            "consecutive_failures": consecutive_failures,
            "failing_since": _iso(since),
            "last_delivery_id": delivery_id,
            "last_event_id": event_id,
            "last_event_type": event_type,
            "last_status_code": last_status_code,
            "last_error": last_error,
            "deliveries_url": "/v1/webhook-deliveries?state=failed",
        },
    )
