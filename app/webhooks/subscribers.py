"""Who receives which events: subscribers, each with its own secret and the event types it wants.

A subscriber is added through the API or the CLI with a name, a URL and its event types (`*` for
every type, including types added later). Its Standard Webhooks secret is generated, shown once
and stored encrypted with the provisioning keys (`PROVISION_ENCRYPTION_KEYS`, Fernet). Rotating it
shows a new secret once; the old one keeps signing too (a second signature in the same header)
for `WEBHOOK_SECRET_ROTATION_GRACE`, so a receiver can switch without missing a delivery.
Removing a subscriber fails its pending deliveries; the row stays for their history.

`WEBHOOK_URLS` seeds subscribers: the worker adds one per URL no subscriber ever had, for every
event type, signing with `WEBHOOK_SECRET` (until its secret is rotated). A removed seed is not
brought back. Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, NotFound
from app.kit.pagination import CursorCodec, Page
from app.settings import WebhookSettings
from app.webhooks import repository
from app.webhooks.models import EVERY_EVENT_TYPE, SubscriberSource, WebhookSubscriber
from app.webhooks.schemas import SubscriberOut

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
SEED_NAME_PREFIX = "env-"
REMOVED_ERROR = "the subscriber was removed"


class SecretBox(Protocol):
    """Encrypts secrets at rest (`app.kit.crypto.PasswordCipher` in every process)."""

    def encrypt(self, password: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...


class SubscriberNotFound(NotFound):
    type_slug = "webhook-subscriber-not-found"
    title = "No such webhook subscriber"


class SubscriberConflict(Conflict):
    type_slug = "webhook-subscriber-conflict"
    title = "A live subscriber already has this name or URL"


@dataclass(frozen=True)
class WithSecret:
    """A subscriber and its new secret, the only time the secret is visible."""

    subscriber: WebhookSubscriber
    secret: str


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_secret(settings: WebhookSettings) -> str | None:
    """`WEBHOOK_SECRET` (the seeded subscribers' secret), or None when unset or empty."""
    if settings.secret is None:
        return None
    value = settings.secret.get_secret_value().strip()
    return value or None


def _types(event_types: Sequence[str]) -> list[str]:
    unique = sorted(set(event_types))
    return [EVERY_EVENT_TYPE] if EVERY_EVENT_TYPE in unique else unique


async def create(
    session: AsyncSession,
    box: SecretBox,
    *,
    name: str,
    url: str,
    event_types: Sequence[str],
    source: SubscriberSource,
    created_by: str | None,
) -> WithSecret:
    """Add a subscriber with a new secret (409 when a live one has the name or URL)."""
    if await repository.live_subscriber_named(session, name) is not None:
        raise SubscriberConflict(f"a subscriber named {name!r} already exists")
    if await repository.live_subscriber_at(session, url) is not None:
        raise SubscriberConflict("a subscriber with this URL already exists")
    secret = new_secret()
    subscriber = await repository.add_subscriber(
        session,
        WebhookSubscriber(
            name=name,
            url=url,
            event_types=_types(event_types),
            source=source.value,
            secret_ciphertext=box.encrypt(secret),
            consecutive_failures=0,
            created_by=created_by,
        ),
    )
    log.info(
        "webhooks.subscriber.created",
        subscriber_id=subscriber.id,
        name=name,
        event_types=subscriber.event_types,
        by=created_by,
    )
    return WithSecret(subscriber, secret)


async def get(session: AsyncSession, subscriber_id: int) -> WebhookSubscriber:
    """A live subscriber, or a 404 problem."""
    subscriber = await repository.subscriber(session, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound(f"no webhook subscriber {subscriber_id}")
    return subscriber


async def named(session: AsyncSession, name: str) -> WebhookSubscriber:
    """The live subscriber with this name, or a 404 problem."""
    subscriber = await repository.live_subscriber_named(session, name)
    if subscriber is None:
        raise SubscriberNotFound(f"no webhook subscriber named {name!r}")
    return subscriber


async def remove(session: AsyncSession, subscriber_id: int, *, by: str | None) -> WebhookSubscriber:
    """Remove a subscriber: it gets no more events, and its pending deliveries fail."""
    subscriber = await repository.subscriber(session, subscriber_id, for_update=True)
    if subscriber is None:
        raise SubscriberNotFound(f"no webhook subscriber {subscriber_id}")
    now = utcnow()
    subscriber.deleted_at = now
    subscriber.updated_at = now
    await session.flush()
    stopped = await repository.fail_pending_deliveries(
        session, subscriber.id, error=REMOVED_ERROR, now=now
    )
    log.info(
        "webhooks.subscriber.removed", subscriber_id=subscriber.id, by=by, pending_failed=stopped
    )
    return subscriber


async def rotate(
    session: AsyncSession, box: SecretBox, subscriber_id: int, *, by: str | None, grace: timedelta
) -> WithSecret:
    """A new secret for a subscriber; the current one keeps signing too for `grace`."""
    subscriber = await repository.subscriber(session, subscriber_id, for_update=True)
    if subscriber is None:
        raise SubscriberNotFound(f"no webhook subscriber {subscriber_id}")
    now = utcnow()
    secret = new_secret()
    # A seeded subscriber's current secret is WEBHOOK_SECRET (ciphertext NULL): it keeps signing
    # through the grace period too, read from the settings, never copied into the table.
    subscriber.previous_secret_ciphertext = subscriber.secret_ciphertext
    subscriber.previous_secret_until = now + grace
    subscriber.secret_ciphertext = box.encrypt(secret)
    subscriber.updated_at = now
    await session.flush()
    log.info("webhooks.subscriber.secret_rotated", subscriber_id=subscriber.id, by=by)
    return WithSecret(subscriber, secret)


async def page(
    session: AsyncSession, cursors: CursorCodec, *, cursor: str | None, limit: int
) -> Page[SubscriberOut]:
    """Live subscribers, oldest first."""
    scope = ["webhook-subscribers"]
    after = cursors.decode(scope, cursor)
    rows = await repository.page_subscribers(
        session, limit=limit + 1, after_id=int(after[0]) if after else None
    )
    return cursors.page(
        rows,
        limit=limit,
        scope=scope,
        position_of=lambda row: (row.id,),
        item=SubscriberOut.model_validate,
    )


async def live_batch(
    session: AsyncSession, *, after_id: int | None, limit: int = 200
) -> Sequence[WebhookSubscriber]:
    """Up to `limit` live subscribers after `after_id`, oldest first."""
    return await repository.page_subscribers(session, limit=limit, after_id=after_id)


async def seed(session: AsyncSession, settings: WebhookSettings) -> int:
    """Add a subscriber for each `WEBHOOK_URLS` entry no subscriber ever had; how many were."""
    if signing_secret(settings) is None or not settings.urls:
        return 0
    known = await repository.urls_ever_subscribed(session, settings.urls)
    added = 0
    for url in dict.fromkeys(settings.urls):
        if url in known:
            continue
        await repository.seed_subscriber(
            session,
            {
                "name": f"{SEED_NAME_PREFIX}{url}"[:200],
                "url": url,
                "event_types": [EVERY_EVENT_TYPE],
                "source": SubscriberSource.ENV.value,
                "secret_ciphertext": None,
                "consecutive_failures": 0,
                "created_by": "WEBHOOK_URLS",
            },
        )
        added += 1
    if added:
        log.info("webhooks.subscriber.seeded", added=added)
    return added


async def wanting(
    session: AsyncSession, event_type: str, settings: WebhookSettings
) -> Sequence[WebhookSubscriber]:
    """The live subscribers that asked for `event_type` and have a secret to sign with."""
    return await repository.subscribers_wanting(
        session, event_type, with_env_secret=signing_secret(settings) is not None
    )


def secrets_of(
    subscriber: WebhookSubscriber | None, box: SecretBox | None, settings: WebhookSettings
) -> list[str]:
    """The secrets a delivery is signed with now (empty: it cannot be signed)."""
    env = signing_secret(settings)
    if subscriber is None or subscriber.secret_ciphertext is None:
        return [env] if env is not None else []
    if box is None:
        return []
    ciphertexts = [subscriber.secret_ciphertext]
    until, previous = subscriber.previous_secret_until, subscriber.previous_secret_ciphertext
    in_grace = until is not None and until > utcnow()
    if in_grace and previous is not None:
        ciphertexts.append(previous)
    try:
        found = [box.decrypt(ciphertext) for ciphertext in ciphertexts]
    except Exception as exc:  # the key that encrypted it was rotated out of the settings
        log.error(
            "webhooks.subscriber.secret_undecryptable",
            subscriber_id=subscriber.id,
            error_type=type(exc).__name__,
        )
        return []
    if in_grace and previous is None and env is not None:
        found.append(env)  # a seeded subscriber's WEBHOOK_SECRET, until the grace ends
    return found


async def record_failure(
    session: AsyncSession, subscriber_id: int, settings: WebhookSettings, *, at: datetime
) -> bool:
    """Count a failed delivery; True when this failure makes the subscriber `failing`."""
    _, crossed = await repository.count_failure(
        session, subscriber_id, threshold=settings.failing_after, now=at
    )
    return crossed


async def record_success(session: AsyncSession, subscriber_id: int, *, at: datetime) -> None:
    """A delivery succeeded: the subscriber's failure streak ends."""
    await repository.count_success(session, subscriber_id, now=at)
