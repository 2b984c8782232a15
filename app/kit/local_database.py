"""Where the database is: `DATABASE_URL`, or the embedded server under `.data/`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from app.db import libpq_url
from app.kit.embedded_postgres import EmbeddedPostgres

EMBEDDED_DATABASE = "partnergate"


def embedded_datadir(data_dir: Path) -> Path:
    """Where the embedded server keeps its files."""
    return data_dir / "postgres"


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server at `server_url` if it does not exist."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def database_url(configured: str | None, *, data_dir: Path) -> Iterator[str]:
    """Yield the configured URL, or start the embedded server and stop it afterwards."""
    if configured:
        yield configured
        return
    datadir = embedded_datadir(data_dir)
    server = EmbeddedPostgres(datadir)
    was_running = (datadir / "postmaster.pid").exists()
    server.start()
    try:
        ensure_database(server.url("postgres"), EMBEDDED_DATABASE)
        yield server.url(EMBEDDED_DATABASE)
    finally:
        if not was_running:
            server.stop()
