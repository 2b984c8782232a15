"""Imports: a partner's own list of the accounts that may use the integration, brought in row by
row; each row keeps what it asked for and what became of it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ImportState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Phase(enum.StrEnum):
    """Where a running import is: reading our partner list, probing, applying rows."""

    WAITING = "waiting"
    LISTING = "listing"
    PROBING = "probing"
    APPLYING = "applying"
    DONE = "done"


class Wish(enum.StrEnum):
    """What a row asks for beyond bringing the account in."""

    APPROVED = "approved"
    BILLING_APPROVED = "billing_approved"


class Outcome(enum.StrEnum):
    ADDED = "added"
    ALREADY_SO = "already_so"
    APPROVED_BY_EVIDENCE = "approved_by_evidence"
    BILLING_APPROVED = "billing_approved"
    REFUSED = "refused"
    NOT_FOUND = "not_found"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(member.value) for member in values)})"


class ImportJob(Base):
    """One file brought in: who asked, its progress, and how its rows ended."""

    __tablename__ = "import_job"
    __table_args__ = (
        CheckConstraint(_in("state", ImportState), name="state"),
        CheckConstraint(_in("phase", Phase), name="phase"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(default=False)
    filename: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(Text)
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    pages_read: Mapped[int] = mapped_column(Integer, default=0)
    list_calls: Mapped[int] = mapped_column(Integer, default=0)
    probe_calls: Mapped[int] = mapped_column(Integer, default=0)
    token_calls: Mapped[int] = mapped_column(Integer, default=0)
    # Rows by outcome, e.g. {"added": 3, "refused": 1}.
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ImportRow(Base):
    """One row of an import's file, and its outcome once applied."""

    __tablename__ = "import_row"
    __table_args__ = (
        CheckConstraint(f"wish IS NULL OR {_in('wish', Wish)}", name="wish"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', Outcome)}", name="outcome"),
        Index("ix_import_row_import_id_outcome", "import_id", "outcome"),
    )

    import_id: Mapped[int] = mapped_column(
        ForeignKey("import_job.id", ondelete="CASCADE"), primary_key=True
    )
    # The line in the file (the header is line 1).
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    encoded_account_id: Mapped[str | None] = mapped_column(String(64))
    login_name: Mapped[str | None] = mapped_column(Text)
    wish: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    # Set when the row itself is unusable (refused without asking CTCT).
    problem: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(Text)
    # The account the row resolved to, and its status after the row was applied.
    resolved_account_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(20))
