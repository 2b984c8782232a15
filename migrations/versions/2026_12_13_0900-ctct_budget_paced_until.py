"""ctct_budget: when the next call is due on the even schedule, apart from late calls

Revision ID: 0014_ctct_budget_paced_until
Revises: 0013_person
Create Date: 2026-12-13 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_ctct_budget_paced_until"
down_revision: str | None = "0013_person"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ctct_budget", sa.Column("paced_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("ctct_budget", "paced_until")
