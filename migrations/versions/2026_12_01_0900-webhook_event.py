"""webhook_event: outgoing events are rows written with the change; the worker fans them out

Existing deliveries get their event rows (already fanned out), so every delivery references one,
and jobs still waiting under the old task names are renamed to the new ones.

Revision ID: 0009_webhook_event
Revises: 0008_webhook_delivery
Create Date: 2026-12-01 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_webhook_event"
down_revision: str | None = "0008_webhook_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RENAME_WAITING_JOBS = """
UPDATE procrastinate_jobs
SET task_name = :new_task, queue_name = :new_queue,
    queueing_lock = CAST(:new_lock AS text)
        || substr(queueing_lock, length(CAST(:old_lock AS text)) + 1)
WHERE task_name = :old_task AND status = 'todo'
"""


def _rename_waiting_jobs(old: tuple[str, str, str], new: tuple[str, str, str]) -> None:
    """Jobs waiting under one (task, queue, lock prefix) move to another."""
    op.get_bind().execute(
        sa.text(_RENAME_WAITING_JOBS),
        {
            "old_task": old[0],
            "old_lock": old[2],
            "new_task": new[0],
            "new_queue": new[1],
            "new_lock": new[2],
        },
    )


_OLD_DELIVER = ("events.deliver", "events", "events-delivery-")
_NEW_DELIVER = ("webhooks.deliver", "webhooks", "webhooks-delivery-")


def upgrade() -> None:
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_event_event_id")),
    )
    op.execute(
        """
        INSERT INTO webhook_event (event_id, event_type, payload, created_at, fanned_out_at)
        SELECT DISTINCT ON (event_id) event_id, event_type, payload, created_at, created_at
        FROM webhook_delivery
        ORDER BY event_id, id
        """
    )
    op.create_foreign_key(
        op.f("fk_webhook_delivery_event_id_webhook_event"),
        "webhook_delivery",
        "webhook_event",
        ["event_id"],
        ["event_id"],
    )
    _rename_waiting_jobs(_OLD_DELIVER, _NEW_DELIVER)


def downgrade() -> None:
    _rename_waiting_jobs(_NEW_DELIVER, _OLD_DELIVER)
    # Events not fanned out yet go with their table.
    op.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'webhooks.fan_out'")
    op.drop_constraint(
        op.f("fk_webhook_delivery_event_id_webhook_event"), "webhook_delivery", type_="foreignkey"
    )
    op.drop_table("webhook_event")
