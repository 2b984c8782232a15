"""transfer_request and transfer_request_event

Revision ID: 0007_transfer_request
Revises: 0006_audit_run
Create Date: 2026-11-22 07:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_transfer_request"
down_revision: str | None = "0006_audit_run"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "'requested', 'submitted', 'completed', 'rejected', 'withdrawn'"
_SOURCES = "'provisioning', 'probe', 'audit', 'person', 'ctct_webhook'"


def _ts(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.text("now()") if default else None,
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "transfer_request",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("closed_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"state IN ({_STATES})", name=op.f("ck_transfer_request_state")),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
            name=op.f("fk_transfer_request_client_id_client"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_request")),
    )
    op.create_index(
        "uq_transfer_request_open_client_id",
        "transfer_request",
        ["client_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('requested', 'submitted')"),
    )
    op.create_index(
        "ix_transfer_request_state_id", "transfer_request", ["state", "id"], unique=False
    )
    op.create_table(
        "transfer_request_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("transfer_request_id", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("audit_run_id", sa.BigInteger(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        sa.CheckConstraint(
            f"from_state IS NULL OR from_state IN ({_STATES})",
            name=op.f("ck_transfer_request_event_from_state"),
        ),
        sa.CheckConstraint(
            f"to_state IN ({_STATES})", name=op.f("ck_transfer_request_event_to_state")
        ),
        sa.CheckConstraint(
            f"source IN ({_SOURCES})", name=op.f("ck_transfer_request_event_source")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_request_id"],
            ["transfer_request.id"],
            name=op.f("fk_transfer_request_event_transfer_request_id_transfer_request"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_request_event")),
    )
    op.create_index(
        "ix_transfer_request_event_request_id_id",
        "transfer_request_event",
        ["transfer_request_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_transfer_request_event_request_id_id", table_name="transfer_request_event")
    op.drop_table("transfer_request_event")
    op.drop_index("ix_transfer_request_state_id", table_name="transfer_request")
    op.drop_index("uq_transfer_request_open_client_id", table_name="transfer_request")
    op.drop_table("transfer_request")
