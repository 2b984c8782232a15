"""client status_event api_key

Revision ID: 0001
Revises:
Create Date: 2026-11-22 06:50:17.432467+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("name", name=op.f("uq_api_key_name")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_key_secret_hash")),
    )
    op.create_table(
        "client",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("encoded_account_id", sa.String(length=64), nullable=False),
        sa.Column("login_name", sa.String(length=50), nullable=True),
        sa.Column("site_owner_name", sa.Text(), nullable=True),
        sa.Column("organization_name", sa.Text(), nullable=True),
        sa.Column("contact_email", sa.Text(), nullable=True),
        sa.Column("billing_status", sa.String(length=32), nullable=True),
        sa.Column("plan_type", sa.String(length=32), nullable=True),
        sa.Column("encoded_partner_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("evidence_status", sa.String(length=20), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_via", sa.String(length=20), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "evidence_status IN ('approved', 'billing_approved', 'other_partner', 'unaffiliated', 'unverified')",
            name=op.f("ck_client_evidence_status"),
        ),
        sa.CheckConstraint(
            "status IN ('approved', 'billing_approved', 'other_partner', 'unaffiliated', 'unverified')",
            name=op.f("ck_client_status"),
        ),
        sa.CheckConstraint(
            "verified_via IS NULL OR verified_via IN ('provisioning', 'partner_list', 'plan_probe', 'account_summary', 'person')",
            name=op.f("ck_client_via"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client")),
        sa.UniqueConstraint("encoded_account_id", name=op.f("uq_client_encoded_account_id")),
    )
    op.create_index(
        "ix_client_login_name_lower",
        "client",
        [sa.literal_column("lower(login_name)")],
        unique=False,
    )
    op.create_index("ix_client_status_id", "client", ["status", "id"], unique=False)
    op.create_table(
        "status_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("audit_run_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "from_status IS NULL OR from_status IN ('approved', 'billing_approved', 'other_partner', 'unaffiliated', 'unverified')",
            name=op.f("ck_status_event_from_status"),
        ),
        sa.CheckConstraint(
            "source IN ('provisioning', 'probe', 'audit', 'person', 'ctct_webhook')",
            name=op.f("ck_status_event_source"),
        ),
        sa.CheckConstraint(
            "to_status IN ('approved', 'billing_approved', 'other_partner', 'unaffiliated', 'unverified')",
            name=op.f("ck_status_event_to_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
            name=op.f("fk_status_event_client_id_client"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_event")),
    )
    op.create_index(
        "ix_status_event_client_id_id", "status_event", ["client_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_status_event_client_id_id", table_name="status_event")
    op.drop_table("status_event")
    op.drop_index("ix_client_status_id", table_name="client")
    op.drop_index("ix_client_login_name_lower", table_name="client")
    op.drop_table("client")
    op.drop_table("api_key")
