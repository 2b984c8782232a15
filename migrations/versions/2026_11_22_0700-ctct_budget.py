"""ctct_budget: the shared CTCT call budget (sliding window, UTC day, 429 penalty)

Revision ID: 0002_ctct_budget
Revises: 0001
Create Date: 2026-11-22 07:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_ctct_budget"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ctct_budget",
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "recent_granted_at",
            postgresql.ARRAY(sa.DateTime(timezone=True)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("quota_day", sa.Date(), nullable=False),
        sa.Column("quota_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("penalty_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("quota_used >= 0", name=op.f("ck_ctct_budget_quota_used_not_negative")),
        sa.PrimaryKeyConstraint("key_fingerprint", name=op.f("pk_ctct_budget")),
    )


def downgrade() -> None:
    op.drop_table("ctct_budget")
