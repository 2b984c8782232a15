"""worker_schema: procrastinate's job tables, functions and triggers

Revision ID: 0003_worker_schema
Revises: 0002_ctct_budget
Create Date: 2026-11-22 07:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0003_worker_schema"
down_revision: str | None = "0002_ctct_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# procrastinate 3.10's schema; a later procrastinate version ships delta SQL files, applied by
# a later migration the same way.
_DROP_EVERYTHING = """
DO $$
DECLARE
    item record;
BEGIN
    DROP TABLE IF EXISTS procrastinate_periodic_defers, procrastinate_events,
        procrastinate_jobs, procrastinate_workers CASCADE;
    FOR item IN
        SELECT p.oid::regprocedure AS signature
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || item.signature || ' CASCADE';
    END LOOP;
    DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
        procrastinate_job_status CASCADE;
END
$$;
"""


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute(_DROP_EVERYTHING)
