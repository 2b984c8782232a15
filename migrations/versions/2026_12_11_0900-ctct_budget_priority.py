"""ctct_budget: until when a waiting caller of each priority holds lower priorities back

Revision ID: 0011_ctct_budget_priority
Revises: 0010_partners
Create Date: 2026-12-11 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ctct_budget_priority"
down_revision: str | None = "0010_partners"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ctct_budget",
        sa.Column("interactive_waiting_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "ctct_budget",
        sa.Column("first_attempt_waiting_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "ctct_budget",
        sa.Column("retry_waiting_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("ctct_budget", "retry_waiting_until")
    op.drop_column("ctct_budget", "first_attempt_waiting_until")
    op.drop_column("ctct_budget", "interactive_waiting_until")
