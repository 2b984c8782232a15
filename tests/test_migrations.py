"""The migration history is linear, builds the schema the models describe, and unwinds."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine

from app.db import libpq_url
from app.migrate import compare_options, downgrade, script_heads, upgrade
from app.models import Base


def _tables(url: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def _schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return _compare(conn)
    finally:
        engine.dispose()


def _compare(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts=compare_options())
    return list(compare_metadata(context, Base.metadata))


def test_history_has_a_single_head() -> None:
    assert len(script_heads()) == 1


def test_upgrade_from_empty_builds_exactly_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)

    assert {"client", "status_event", "api_key"} <= _tables(empty_database_url)
    assert _schema_differences(empty_database_url) == []


def test_downgrade_to_base_removes_every_table(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")

    assert _tables(empty_database_url) <= {"alembic_version"}
