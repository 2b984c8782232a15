"""The status store: clients and their append-only status history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# Every status change is announced on this Postgres channel (payload: the account id) so each
# replica's access cache forgets its copy (app/access/listener.py).
STATUS_CHANNEL = "client_status"


class ClientStatus(enum.StrEnum):
    APPROVED = "approved"
    BILLING_APPROVED = "billing_approved"
    OTHER_PARTNER = "other_partner"
    UNAFFILIATED = "unaffiliated"
    UNVERIFIED = "unverified"


class VerifiedVia(enum.StrEnum):
    PROVISIONING = "provisioning"
    PARTNER_LIST = "partner_list"
    PLAN_PROBE = "plan_probe"
    ACCOUNT_SUMMARY = "account_summary"
    PERSON = "person"


class EventSource(enum.StrEnum):
    PROVISIONING = "provisioning"
    PROBE = "probe"
    AUDIT = "audit"
    PERSON = "person"
    CTCT_WEBHOOK = "ctct_webhook"
    IMPORT = "import"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


class Client(Base):
    """One CTCT account we know of."""

    __tablename__ = "client"
    __table_args__ = (
        CheckConstraint(_in("status", ClientStatus), name="status"),
        CheckConstraint(_in("evidence_status", ClientStatus), name="evidence_status"),
        CheckConstraint(f"verified_via IS NULL OR {_in('verified_via', VerifiedVia)}", name="via"),
        Index("ix_client_login_name_lower", func.lower(literal_column("login_name"))),
        Index("ix_client_site_owner_name_lower", func.lower(literal_column("site_owner_name"))),
        Index("ix_client_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    encoded_account_id: Mapped[str] = mapped_column(String(64), unique=True)
    login_name: Mapped[str | None] = mapped_column(String(50))
    site_owner_name: Mapped[str | None] = mapped_column(Text)
    organization_name: Mapped[str | None] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(Text)
    billing_status: Mapped[str | None] = mapped_column(String(32))
    # From the partner list: contacts in the account, and when its owner last logged in.
    subscriber_count: Mapped[int | None] = mapped_column(BigInteger)
    last_login_date: Mapped[datetime | None]
    plan_type: Mapped[str | None] = mapped_column(String(32))
    encoded_partner_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str] = mapped_column(Text)
    # What CTCT's evidence alone says; `status` differs only while a person's billing approval
    # stands, and revoking that approval restores this.
    evidence_status: Mapped[str] = mapped_column(String(20))
    verified_at: Mapped[datetime | None]
    verified_via: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class StatusEvent(Base):
    """One status change; rows are only ever inserted."""

    __tablename__ = "status_event"
    __table_args__ = (
        CheckConstraint(_in("to_status", ClientStatus), name="to_status"),
        CheckConstraint(
            f"from_status IS NULL OR {_in('from_status', ClientStatus)}", name="from_status"
        ),
        CheckConstraint(_in("source", EventSource), name="source"),
        Index("ix_status_event_client_id_id", "client_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id", ondelete="RESTRICT"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    # A foreign key to audit_run, declared by the audit's models (app/audit/models.py).
    audit_run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PartnerListing(Base):
    """One complete read of our partner list (by the audit, an import or a fresh lookup).

    A name that is in none of the accounts we mirror was in no listing since the newest of these.
    """

    __tablename__ = "partner_listing"
    __table_args__ = (Index("ix_partner_listing_completed_at", "completed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime]
    accounts: Mapped[int] = mapped_column(BigInteger)


class TransferState(enum.StrEnum):
    REQUESTED = "requested"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN_TRANSFER_STATES = (TransferState.REQUESTED, TransferState.SUBMITTED)


class TransferRequest(Base):
    """A person's request that CTCT move an unaffiliated account under our partner."""

    __tablename__ = "transfer_request"
    __table_args__ = (
        CheckConstraint(_in("state", TransferState), name="state"),
        # At most one open request per client.
        Index(
            "uq_transfer_request_open_client_id",
            "client_id",
            unique=True,
            postgresql_where=text("state IN ('requested', 'submitted')"),
        ),
        Index("ix_transfer_request_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class TransferRequestEvent(Base):
    """One state change of a transfer request; rows are only ever inserted."""

    __tablename__ = "transfer_request_event"
    __table_args__ = (
        CheckConstraint(_in("to_state", TransferState), name="to_state"),
        CheckConstraint(
            f"from_state IS NULL OR {_in('from_state', TransferState)}", name="from_state"
        ),
        CheckConstraint(_in("source", EventSource), name="source"),
        Index("ix_transfer_request_event_request_id_id", "transfer_request_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transfer_request_id: Mapped[int] = mapped_column(
        ForeignKey("transfer_request.id", ondelete="RESTRICT")
    )
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    audit_run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
