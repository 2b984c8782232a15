"""audit_run, audit_seen, audit_held_demotion; status_event.audit_run_id references audit_run

Revision ID: 0006_audit_run
Revises: 0004_provisioning_request
Create Date: 2026-11-22 07:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_run"
down_revision: str | None = "0004_provisioning_request"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.text("now()") if default else None,
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "audit_run",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        _ts("scheduled_for"),
        _ts("created_at", nullable=False, default=True),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _ts("finished_at"),
        sa.Column("listing_completed", sa.Boolean(), nullable=False),
        sa.Column("pages_read", sa.Integer(), nullable=False),
        sa.Column("list_calls", sa.Integer(), nullable=False),
        sa.Column("token_calls", sa.Integer(), nullable=False),
        sa.Column("clients_seen", sa.Integer(), nullable=False),
        sa.Column("clients_added", sa.Integer(), nullable=False),
        sa.Column("clients_changed", sa.Integer(), nullable=False),
        sa.Column("approved_before", sa.Integer(), nullable=True),
        sa.Column("demotions", sa.Integer(), nullable=False),
        sa.Column("held_demotions", sa.Integer(), nullable=False),
        sa.Column("held_resolution", sa.String(length=20), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        _ts("resolved_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'incomplete', 'held', 'failed')",
            name=op.f("ck_audit_run_state"),
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'api', 'cli')", name=op.f("ck_audit_run_trigger")
        ),
        sa.CheckConstraint(
            "held_resolution IS NULL OR held_resolution IN ('confirmed', 'rejected')",
            name=op.f("ck_audit_run_held_resolution"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_run")),
    )
    op.create_index(
        "uq_audit_run_active",
        "audit_run",
        [sa.text("(true)")],
        unique=True,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
    op.create_index(
        "uq_audit_run_scheduled_for",
        "audit_run",
        ["scheduled_for"],
        unique=True,
        postgresql_where=sa.text("scheduled_for IS NOT NULL"),
    )
    op.create_table(
        "audit_seen",
        sa.Column("audit_run_id", sa.BigInteger(), nullable=False),
        sa.Column("encoded_account_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_run_id"],
            ["audit_run.id"],
            name=op.f("fk_audit_seen_audit_run_id_audit_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audit_run_id", "encoded_account_id", name=op.f("pk_audit_seen")),
    )
    op.create_table(
        "audit_held_demotion",
        sa.Column("audit_run_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("encoded_account_id", sa.String(length=64), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_run_id"],
            ["audit_run.id"],
            name=op.f("fk_audit_held_demotion_audit_run_id_audit_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
            name=op.f("fk_audit_held_demotion_client_id_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audit_run_id", "client_id", name=op.f("pk_audit_held_demotion")),
    )
    op.create_foreign_key(
        op.f("fk_status_event_audit_run_id_audit_run"),
        "status_event",
        "audit_run",
        ["audit_run_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_status_event_audit_run_id_audit_run"), "status_event", type_="foreignkey"
    )
    op.drop_table("audit_held_demotion")
    op.drop_table("audit_seen")
    op.drop_index("uq_audit_run_scheduled_for", table_name="audit_run")
    op.drop_index("uq_audit_run_active", table_name="audit_run")
    op.drop_table("audit_run")
