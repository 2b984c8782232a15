"""partner_list_read: one shared reading of the partner list answers every unknown outcome;
provisioning_request gets its open question (unknown_since, after_conflict) and a fencing token

Revision ID: 0012_partner_list_read
Revises: 0011_ctct_budget_priority
Create Date: 2026-12-11 09:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_partner_list_read"
down_revision: str | None = "0011_ctct_budget_priority"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "provisioning_request",
        sa.Column("unknown_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "provisioning_request",
        sa.Column("after_conflict", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "provisioning_request",
        sa.Column("fence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    # Requests left waiting by the old code (may_exist, pending) wait for the first read.
    op.execute(
        "UPDATE provisioning_request SET unknown_since = updated_at "
        "WHERE state = 'pending' AND may_exist"
    )
    op.create_table(
        "partner_list_read",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_href", sa.Text(), nullable=True),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages_read", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("list_calls", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("accounts_seen", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("requests_answered", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'dropped')",
            name=op.f("ck_partner_list_read_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_list_read")),
    )
    op.create_index(
        "uq_partner_list_read_queued",
        "partner_list_read",
        [sa.text("(true)")],
        unique=True,
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index(
        "uq_partner_list_read_running",
        "partner_list_read",
        [sa.text("(true)")],
        unique=True,
        postgresql_where=sa.text("state = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_partner_list_read_running", table_name="partner_list_read")
    op.drop_index("uq_partner_list_read_queued", table_name="partner_list_read")
    op.drop_table("partner_list_read")
    op.drop_column("provisioning_request", "fence")
    op.drop_column("provisioning_request", "after_conflict")
    op.drop_column("provisioning_request", "unknown_since")
