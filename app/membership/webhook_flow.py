"""CTCT's partner webhooks in: verified, then mirrored onto the client they name (a flow).

`receive` opens its own short transactions and reads CTCT's plan between them, never inside one.

The notification is `{"url": ".../v3/partner/accounts/<id>/plan", "api_key": ..., "event_type":
...}` (NOTES §2.9-2.13); the account id comes from the `url` path. Effects:

- tier up/down: the plan is re-read from CTCT (no transaction open) as a plan probe, so
  plan_type and billing_status come from the authority, and a status change that answer implies
  (rare: an account that is no longer ours) goes through the status rules with source
  `ctct_webhook`. CTCT unable to answer -> 503, so CTCT retries (every minute for an hour);
- account cancelled: billing_status `Canceled`;
- account disabled: billing_status `Disabled` (not a status CTCT's plan endpoint reports, so the
  mirror says what the webhook said until the next plan read overwrites it).

An account we do not know, or an event type we do not know, is accepted (202) and only logged:
the audit adds accounts from our list, and a partner webhook alone is not evidence of membership
under DESIGN.md §3. Only `tier.increase` is named by CTCT (NOTES Q10); the other names are
assumed, with spelling variants accepted.
"""

from __future__ import annotations

import enum
import json
import re
import time
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import MirroredAttributes
from app.clients.models import EventSource
from app.clients.schemas import ACCOUNT_ID
from app.ctct.client import CtctClient
from app.ctct.priorities import Priority
from app.ctct.webhook_signature import CtctKeys
from app.errors import BadRequest, NotFound, UpstreamUnavailable
from app.membership import probe

log = structlog.get_logger(__name__)

ACTOR = clients_service.Actor(EventSource.CTCT_WEBHOOK, name="ctct-webhook")
# A webhook answer should not wait long for the call budget; CTCT retries a 503.
PLAN_READ_MAX_WAIT_SECONDS = 5.0
_PLAN_URL = re.compile(r"/partner/accounts/([^/]+)/plan/?$")


class CtctEvent(enum.StrEnum):
    TIER_INCREASE = "tier.increase"
    TIER_DECREASE = "tier.decrease"
    ACCOUNT_CANCELLED = "account.cancelled"
    ACCOUNT_DISABLED = "account.disabled"


# CTCT's names for topics 2-4 are unknown (Q10): accept the likely spellings.
_EVENT_NAMES: dict[str, CtctEvent] = {
    **{event.value: event for event in CtctEvent},
    "tier.upgrade": CtctEvent.TIER_INCREASE,
    "tier.downgrade": CtctEvent.TIER_DECREASE,
    "account.canceled": CtctEvent.ACCOUNT_CANCELLED,
    "account.cancel": CtctEvent.ACCOUNT_CANCELLED,
    "account.disable": CtctEvent.ACCOUNT_DISABLED,
}
_BILLING_STATUS = {
    CtctEvent.ACCOUNT_CANCELLED: "Canceled",
    CtctEvent.ACCOUNT_DISABLED: "Disabled",
}


class MalformedNotification(BadRequest):
    type_slug = "ctct-webhook-malformed"
    title = "The webhook body is not a CTCT notification"


@dataclass(frozen=True)
class Notification:
    encoded_account_id: str
    event_type: str
    event: CtctEvent | None


@dataclass(frozen=True)
class Receipt:
    """What became of one webhook."""

    encoded_account_id: str
    event_type: str
    applied: bool
    reason: str
    status: str | None = None
    billing_status: str | None = None
    plan_type: str | None = None


def parse_notification(body: bytes) -> Notification:
    """The account and event of a notification body; 400 if it is not one."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedNotification("The body is not JSON.") from None
    if not isinstance(document, dict):
        raise MalformedNotification("The body is not a JSON object.")
    url, event_type = document.get("url"), document.get("event_type")
    if not isinstance(url, str) or not isinstance(event_type, str) or not event_type:
        raise MalformedNotification("The body needs `url` and `event_type` strings.")
    match = _PLAN_URL.search(url.split("?", 1)[0])
    if match is None or ACCOUNT_ID.fullmatch(match[1]) is None:
        raise MalformedNotification("`url` is not an account's plan URL.")
    return Notification(match[1], event_type, _EVENT_NAMES.get(event_type.strip().lower()))


async def receive(
    keys: CtctKeys,
    ctct: CtctClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    signature: str | None,
    body: bytes,
) -> Receipt:
    """Verify one webhook, then apply it; nothing changes unless the signature holds."""
    await keys.verify(signature, body, now=time.time())
    notification = parse_notification(body)
    account_id = notification.encoded_account_id
    fields = {"client": account_id, "event_type": notification.event_type}
    if notification.event is None:
        log.warning("membership.ctct_webhook.unknown_type", **fields)
        return Receipt(account_id, notification.event_type, False, "unknown_event_type")
    if not await _known(sessionmaker, account_id):
        log.info("membership.ctct_webhook.unknown_account", **fields)
        return Receipt(account_id, notification.event_type, False, "unknown_account")
    if notification.event in _BILLING_STATUS:
        receipt = await _mirror_billing_status(sessionmaker, notification)
    else:
        receipt = await _reread_plan(ctct, sessionmaker, notification)
    log.info(
        "membership.ctct_webhook.applied",
        reason=receipt.reason,
        status=receipt.status,
        billing_status=receipt.billing_status,
        **fields,
    )
    return receipt


async def _known(sessionmaker: async_sessionmaker[AsyncSession], account_id: str) -> bool:
    async with sessionmaker() as session:
        try:
            await clients_service.get(session, account_id)
        except NotFound:
            return False
    return True


async def _mirror_billing_status(
    sessionmaker: async_sessionmaker[AsyncSession], notification: Notification
) -> Receipt:
    assert notification.event is not None
    billing_status = _BILLING_STATUS[notification.event]
    async with sessionmaker() as session, session.begin():
        client = await clients_service.mirror_attributes(
            session,
            notification.encoded_account_id,
            MirroredAttributes(billing_status=billing_status),
        )
    if client is None:  # deleted between the look-up and the update: clients are never deleted
        return Receipt(
            notification.encoded_account_id, notification.event_type, False, "unknown_account"
        )
    return Receipt(
        notification.encoded_account_id,
        notification.event_type,
        True,
        notification.event.value,
        status=client.status,
        billing_status=client.billing_status,
        plan_type=client.plan_type,
    )


async def _reread_plan(
    ctct: CtctClient, sessionmaker: async_sessionmaker[AsyncSession], notification: Notification
) -> Receipt:
    result = await probe.probe(
        ctct,
        sessionmaker,
        notification.encoded_account_id,
        actor=ACTOR,
        priority=Priority.BACKGROUND,
        max_wait=PLAN_READ_MAX_WAIT_SECONDS,
    )
    if not result.answered:
        raise UpstreamUnavailable(
            "CTCT could not be asked for the account's plan; the webhook was not applied.",
            headers={"Retry-After": "60"},
        )
    client = result.client
    return Receipt(
        notification.encoded_account_id,
        notification.event_type,
        True,
        "plan_reread",
        status=client.status,
        billing_status=client.billing_status,
        plan_type=client.plan_type,
    )
