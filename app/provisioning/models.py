"""One row per create call we accepted: its idempotency key, progress and outcome."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class RequestState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"


TERMINAL_STATES = frozenset(
    {RequestState.SUCCEEDED, RequestState.FAILED, RequestState.NEEDS_ATTENTION}
)
_STATES = ", ".join(f"'{state.value}'" for state in RequestState)


class ProvisioningRequest(Base):
    """A create call to CTCT we owe the caller; never sent twice at once, never twice in all."""

    __tablename__ = "provisioning_request"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        Index("ix_provisioning_request_state_id", "state", "id"),
        Index("ix_provisioning_request_login_name_lower", func.lower(literal_column("login_name"))),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger)
    api_key_name: Mapped[str] = mapped_column(String(100))
    # Released (set NULL) once older than IDEMPOTENCY_TTL and finished; the row stays as history.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    password_ciphertext: Mapped[str | None] = mapped_column(Text)
    login_name: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default=RequestState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # An earlier attempt may have reached CTCT with no answer we can trust (timeout, 503,
    # a lost process): the next attempt must look for the account before sending again.
    may_exist: Mapped[bool] = mapped_column(default=False)
    # The question "does the account exist?" is open since then: nothing is sent until a
    # partner-list read that began after it answers (`PartnerListRead`).
    unknown_since: Mapped[datetime | None]
    # The open question follows a 409: absent from the list, the login name is someone else's.
    after_conflict: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The fencing token: every claim takes the next one; an outcome is recorded only under it.
    fence: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # After this the request stops retrying (PROVISION_MAX_AGE from creation or from a re-queue).
    deadline_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    encoded_account_id: Mapped[str | None] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]


class ReadState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    # Nobody waits for it any more (every request it was to answer ended another way).
    DROPPED = "dropped"


_READ_STATES = ", ".join(f"'{state.value}'" for state in ReadState)


class PartnerListRead(Base):
    """One reading of our whole partner list that answers every request whose outcome is
    unknown since before it began (DESIGN §5, "Unknown outcomes").

    At most one is queued and one running at a time, across the cluster. A running read keeps
    its place (`next_href`) page by page, so a worker killed mid-way costs one page, not a
    restart; it is held under a fenced lease like a provisioning request.
    """

    __tablename__ = "partner_list_read"
    __table_args__ = (
        CheckConstraint(f"state IN ({_READ_STATES})", name="state"),
        Index(
            "uq_partner_list_read_queued",
            text("(true)"),
            unique=True,
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "uq_partner_list_read_running",
            text("(true)"),
            unique=True,
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(20))
    # A queued read starts PROVISION_RECONCILE_INTERVAL_SECONDS after this at the soonest, and
    # as long after the previous read started: the outcomes of one bad minute share a read.
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Where the running read goes on (None: the first page); paused until `resume_at`.
    next_href: Mapped[str | None] = mapped_column(Text)
    resume_at: Mapped[datetime | None]
    fence: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    lease_expires_at: Mapped[datetime | None]
    pages_read: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    list_calls: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    accounts_seen: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    requests_answered: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
