"""Outgoing webhooks: one row per event, and one delivery row per event and receiver URL."""

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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EventType(enum.StrEnum):
    CLIENT_STATUS_CHANGED = "client.status_changed"
    PROVISIONING_FINISHED = "provisioning.finished"


_STATES = ", ".join(f"'{state.value}'" for state in DeliveryState)


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
