"""provisioning_request: one row per accepted create call

Revision ID: 0004_provisioning_request
Revises: 0003_worker_schema
Create Date: 2026-11-22 07:11:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_provisioning_request"
down_revision: str | None = "0003_worker_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provisioning_request",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("api_key_name", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("password_ciphertext", sa.Text(), nullable=True),
        sa.Column("login_name", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("may_exist", sa.Boolean(), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("encoded_account_id", sa.String(length=64), nullable=True),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
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
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'in_flight', 'succeeded', 'failed', 'needs_attention')",
            name=op.f("ck_provisioning_request_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_request")),
        sa.UniqueConstraint(
            "api_key_id",
            "idempotency_key",
            name=op.f("uq_provisioning_request_api_key_id_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_provisioning_request_login_name_lower",
        "provisioning_request",
        [sa.text("lower(login_name)")],
        unique=False,
    )
    op.create_index(
        "ix_provisioning_request_state_id",
        "provisioning_request",
        ["state", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_provisioning_request_state_id", table_name="provisioning_request")
    op.drop_index("ix_provisioning_request_login_name_lower", table_name="provisioning_request")
    op.drop_table("provisioning_request")
