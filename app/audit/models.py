"""Audit runs: one row per reconciliation, the ids a run saw, and the demotions it held."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.clients.models import StatusEvent
from app.db import Base


class AuditState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    HELD = "held"
    FAILED = "failed"


class AuditTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    CLI = "cli"


class HeldResolution(enum.StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


ACTIVE_STATES = frozenset({AuditState.QUEUED, AuditState.RUNNING})
_STATES = ", ".join(f"'{state.value}'" for state in AuditState)
_TRIGGERS = ", ".join(f"'{trigger.value}'" for trigger in AuditTrigger)
_RESOLUTIONS = ", ".join(f"'{resolution.value}'" for resolution in HeldResolution)


class AuditRun(Base):
    """One reconciliation of our store with CTCT's partner list."""

    __tablename__ = "audit_run"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        CheckConstraint(f"trigger IN ({_TRIGGERS})", name="trigger"),
        CheckConstraint(
            f"held_resolution IS NULL OR held_resolution IN ({_RESOLUTIONS})",
            name="held_resolution",
        ),
        # At most one run queued or running at a time, across every replica.
        Index(
            "uq_audit_run_active",
            text("(true)"),
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
        # At most one scheduled run per period, across every worker.
        Index(
            "uq_audit_run_scheduled_for",
            "scheduled_for",
            unique=True,
            postgresql_where=text("scheduled_for IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str | None] = mapped_column(Text)
    scheduled_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    listing_completed: Mapped[bool] = mapped_column(default=False)
    pages_read: Mapped[int] = mapped_column(Integer, default=0)
    list_calls: Mapped[int] = mapped_column(Integer, default=0)
    token_calls: Mapped[int] = mapped_column(Integer, default=0)
    clients_seen: Mapped[int] = mapped_column(Integer, default=0)
    clients_added: Mapped[int] = mapped_column(Integer, default=0)
    clients_changed: Mapped[int] = mapped_column(Integer, default=0)
    approved_before: Mapped[int | None] = mapped_column(Integer)
    demotions: Mapped[int] = mapped_column(Integer, default=0)
    held_demotions: Mapped[int] = mapped_column(Integer, default=0)
    held_resolution: Mapped[str | None] = mapped_column(String(20))
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    @property
    def ctct_calls(self) -> int:
        """Every CTCT call the run spent: list pages (with retries) and token fetches."""
        return self.list_calls + self.token_calls


class AuditSeen(Base):
    """An account id a run found in our partner list (scratch; deleted when the run ends)."""

    __tablename__ = "audit_seen"

    audit_run_id: Mapped[int] = mapped_column(
        ForeignKey("audit_run.id", ondelete="CASCADE"), primary_key=True
    )
    encoded_account_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class AuditHeldDemotion(Base):
    """A demotion a run held back because there were too many; a person confirms or rejects."""

    __tablename__ = "audit_held_demotion"

    audit_run_id: Mapped[int] = mapped_column(
        ForeignKey("audit_run.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(
        ForeignKey("client.id", ondelete="CASCADE"), primary_key=True
    )
    encoded_account_id: Mapped[str] = mapped_column(String(64))
    applied: Mapped[bool | None]


# `status_event.audit_run_id` references `audit_run`. The audit declares that reference, so the
# clients' models need not know the audit: the full registry (`app.models`) carries it for Alembic
# and the schema test, and a process that never loads the audit has no audit_run to resolve.
Base.metadata.tables[StatusEvent.__tablename__].append_constraint(
    ForeignKeyConstraint(["audit_run_id"], [AuditRun.id], ondelete="RESTRICT")
)
