"""What every benchmark needs: a Postgres server, a database of its own, a free port."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from app.db import libpq_url
from app.kit.embedded_postgres import EmbeddedPostgres
from app.sandbox.partners import OTHER_PARTNER, OUR_PARTNER
from app.sandbox.state import SandboxState

ROOT = Path(__file__).resolve().parent.parent

# "Our" partner in a benchmark's sandbox, with credentials of its own: outside development,
# settings refuse the sandbox's published (placeholder) credentials.
BENCH_PARTNER = dataclasses.replace(
    OUR_PARTNER,
    client_id="partnergate-bench-client",
    client_secret="partnergate-bench-client-secret",
    api_key="partnergate-bench-api-key",
)


def bench_sandbox(**options: Any) -> SandboxState:
    """A sandbox whose own partner is BENCH_PARTNER."""
    return SandboxState(partners=(BENCH_PARTNER, OTHER_PARTNER), **options)


def credentials_env() -> dict[str, str]:
    """BENCH_PARTNER's credentials as a partnergate process reads them."""
    return {
        "CTCT_CLIENT_ID": BENCH_PARTNER.client_id,
        "CTCT_CLIENT_SECRET": BENCH_PARTNER.client_secret,
        "CTCT_API_KEY": BENCH_PARTNER.api_key,
    }


@contextmanager
def postgres_server() -> Iterator[str]:
    """A SQLAlchemy URL to a server's maintenance database (DATABASE_URL's, or embedded)."""
    configured = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield make_url(configured).set(drivername="postgresql+psycopg").render_as_string(False)
        return
    server = EmbeddedPostgres(ROOT / ".data" / "bench-postgres")
    was_running = (server.datadir / "postmaster.pid").exists()
    url = server.start(durable=False)
    try:
        yield url
    finally:
        if not was_running:
            server.stop()


@contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A database of our own on the server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
