"""partners: the mirror keeps the partner list's fields; complete listings; imports; webhook
subscribers and the quota-low mark

- client: subscriber_count and last_login_date from the partner list, an index on the lowered
  site-owner name (lookup by login name); `import` joins the event sources.
- partner_listing: one row per complete read of our partner list.
- import_job, import_row: a partner's list brought in, row by row, with the outcome of each.
- webhook_subscriber: who receives which event types, each with its own secret; deliveries say
  which subscriber they are for.
- ctct_budget.quota_low_day: the UTC day `ctct.quota_low` was last sent (once per day).

Revision ID: 0010_partners
Revises: 0009_webhook_event
Create Date: 2026-12-10 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_partners"
down_revision: str | None = "0009_webhook_event"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SOURCES = "'provisioning', 'probe', 'audit', 'person', 'ctct_webhook'"
_SOURCES_WITH_IMPORT = _SOURCES + ", 'import'"
_SOURCE_CHECKS = (("status_event", "ck_status_event_source"),)
_TRANSFER_SOURCE_CHECK = ("transfer_request_event", "ck_transfer_request_event_source")


def _timestamps() -> list[sa.Column[object]]:
    return [
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
    ]


def _replace_source_checks(sources: str) -> None:
    for table, name in (*_SOURCE_CHECKS, _TRANSFER_SOURCE_CHECK):
        op.drop_constraint(op.f(name), table, type_="check")
        op.create_check_constraint(op.f(name), table, f"source IN ({sources})")


def upgrade() -> None:
    op.add_column("client", sa.Column("subscriber_count", sa.BigInteger(), nullable=True))
    op.add_column("client", sa.Column("last_login_date", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_client_site_owner_name_lower",
        "client",
        [sa.literal_column("lower(site_owner_name)")],
        unique=False,
    )
    _replace_source_checks(_SOURCES_WITH_IMPORT)
    op.create_table(
        "partner_listing",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accounts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_listing")),
    )
    op.create_index(
        "ix_partner_listing_completed_at", "partner_listing", ["completed_at"], unique=False
    )
    _create_subscribers()
    op.add_column("ctct_budget", sa.Column("quota_low_day", sa.Date(), nullable=True))
    _create_imports()


def _create_imports() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("pages_read", sa.Integer(), nullable=False),
        sa.Column("list_calls", sa.Integer(), nullable=False),
        sa.Column("probe_calls", sa.Integer(), nullable=False),
        sa.Column("token_calls", sa.Integer(), nullable=False),
        sa.Column("outcomes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'failed')",
            name=op.f("ck_import_job_state"),
        ),
        sa.CheckConstraint(
            "phase IN ('waiting', 'listing', 'probing', 'applying', 'done')",
            name=op.f("ck_import_job_phase"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
    )
    op.create_table(
        "import_row",
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("encoded_account_id", sa.String(length=64), nullable=True),
        sa.Column("login_name", sa.Text(), nullable=True),
        sa.Column("wish", sa.String(length=20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("resolved_account_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.CheckConstraint(
            "wish IS NULL OR wish IN ('approved', 'billing_approved')",
            name=op.f("ck_import_row_wish"),
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('added', 'already_so', 'approved_by_evidence', "
            "'billing_approved', 'refused', 'not_found')",
            name=op.f("ck_import_row_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["import_job.id"],
            name=op.f("fk_import_row_import_id_import_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "line", name=op.f("pk_import_row")),
    )
    op.create_index(
        "ix_import_row_import_id_outcome", "import_row", ["import_id", "outcome"], unique=False
    )


def _create_subscribers() -> None:
    op.create_table(
        "webhook_subscriber",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("previous_secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        *_timestamps(),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "source IN ('api', 'cli', 'env')", name=op.f("ck_webhook_subscriber_source")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriber")),
    )
    for column in ("name", "url"):
        op.create_index(
            f"uq_webhook_subscriber_live_{column}",
            "webhook_subscriber",
            [column],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
    op.add_column("webhook_delivery", sa.Column("subscriber_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_webhook_delivery_subscriber_id_webhook_subscriber"),
        "webhook_delivery",
        "webhook_subscriber",
        ["subscriber_id"],
        ["id"],
    )


def _drop_subscribers() -> None:
    op.drop_constraint(
        op.f("fk_webhook_delivery_subscriber_id_webhook_subscriber"),
        "webhook_delivery",
        type_="foreignkey",
    )
    op.drop_column("webhook_delivery", "subscriber_id")
    for column in ("name", "url"):
        op.drop_index(f"uq_webhook_subscriber_live_{column}", table_name="webhook_subscriber")
    op.drop_table("webhook_subscriber")


def downgrade() -> None:
    op.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'imports.run'")
    op.drop_index("ix_import_row_import_id_outcome", table_name="import_row")
    op.drop_table("import_row")
    op.drop_table("import_job")
    op.drop_column("ctct_budget", "quota_low_day")
    _drop_subscribers()
    op.drop_index("ix_partner_listing_completed_at", table_name="partner_listing")
    op.drop_table("partner_listing")
    # History is kept: what an import recorded from the partner list reads as the audit's.
    op.execute("UPDATE status_event SET source = 'audit' WHERE source = 'import'")
    op.execute("UPDATE transfer_request_event SET source = 'audit' WHERE source = 'import'")
    _replace_source_checks(_SOURCES)
    op.drop_index("ix_client_site_owner_name_lower", table_name="client")
    op.drop_column("client", "last_login_date")
    op.drop_column("client", "subscriber_count")
