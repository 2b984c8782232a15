"""Outgoing webhooks: subscribers, one row per event, one delivery row per event and subscriber."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EventType(enum.StrEnum):
    CLIENT_STATUS_CHANGED = "client.status_changed"
    PROVISIONING_FINISHED = "provisioning.finished"
    AUDIT_DEMOTIONS_HELD = "audit.demotions_held"
    PROVISIONING_NEEDS_ATTENTION = "provisioning.needs_attention"
    CTCT_QUOTA_LOW = "ctct.quota_low"
    WEBHOOK_DELIVERY_FAILING = "webhook.delivery_failing"


# In a subscriber's event types: every type, including those added later.
EVERY_EVENT_TYPE = "*"


class SubscriberSource(enum.StrEnum):
    API = "api"
    CLI = "cli"
    # Seeded from WEBHOOK_URLS; signs with WEBHOOK_SECRET until its secret is rotated.
    ENV = "env"


_STATES = ", ".join(f"'{state.value}'" for state in DeliveryState)
_SOURCES = ", ".join(f"'{source.value}'" for source in SubscriberSource)


class WebhookSubscriber(Base):
    """A receiver of events: its URL, the event types it wants and its own signing secret."""

    __tablename__ = "webhook_subscriber"
    __table_args__ = (
        CheckConstraint(f"source IN ({_SOURCES})", name="source"),
        # One live subscriber per name and per URL; removed ones stay for the deliveries' sake.
        Index(
            "uq_webhook_subscriber_live_name",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "uq_webhook_subscriber_live_url",
            "url",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    source: Mapped[str] = mapped_column(String(10))
    # Fernet ciphertext (PROVISION_ENCRYPTION_KEYS); NULL: WEBHOOK_SECRET (seeded from env).
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    # After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Set when `webhook.delivery_failing` was sent; cleared by the next delivery that succeeds.
    failing_since: Mapped[datetime | None]
    last_delivered_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    deleted_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """One event, written in the transaction of the change it reports; the worker fans it out."""

    __tablename__ = "webhook_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The `webhook-id` header of every delivery of this event, so receivers can deduplicate.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When the worker turned it into deliveries for the receivers configured then (maybe none).
    fanned_out_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event owed to one receiver: its signed payload's id, progress and last answer."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "url"),
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        Index("ix_webhook_delivery_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), ForeignKey("webhook_event.event_id"))
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    # NULL only for deliveries made before subscribers existed (they sign with WEBHOOK_SECRET).
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_subscriber.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_response: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
