"""Shared fixtures: a real Postgres (embedded unless TEST_DATABASE_URL is set), one freshly
migrated database per test cloned from a template, settings, the app and its HTTP client."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import service as keys_service
from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.db import create_engine, create_sessionmaker, libpq_url
from app.kit.embedded_postgres import EmbeddedPostgres
from app.migrate import PROJECT_ROOT, upgrade
from app.sandbox.app import create_sandbox_app
from app.sandbox.partners import OTHER_PARTNER, OUR_PARTNER
from app.sandbox.state import SandboxState
from app.settings import Settings

TEST_DATADIR = PROJECT_ROOT / ".data" / "test-postgres"
TEST_FERNET_KEY = Fernet.generate_key().decode()

# "Our" partner in the suite's sandboxes, with credentials of its own: settings refuse the
# sandbox's published (placeholder) credentials in every environment but development.
TEST_PARTNER = dataclasses.replace(
    OUR_PARTNER,
    client_id="partnergate-test-client",
    client_secret="partnergate-test-client-secret",
    api_key="partnergate-test-api-key",
)
TEST_PARTNERS = (TEST_PARTNER, OTHER_PARTNER)
TEST_CREDENTIALS: dict[str, str] = {
    "client_id": TEST_PARTNER.client_id,
    "client_secret": TEST_PARTNER.client_secret,
    "api_key": TEST_PARTNER.api_key,
}


def credentials_env() -> dict[str, str]:
    """TEST_PARTNER's credentials as a partnergate process reads them from its environment."""
    return {f"CTCT_{name.upper()}": value for name, value in TEST_CREDENTIALS.items()}


def new_sandbox(**options: Any) -> SandboxState:
    """A sandbox whose own partner is TEST_PARTNER (the credentials test settings carry)."""
    return SandboxState(partners=TEST_PARTNERS, **options)


def _on_database(server_url: str, database: str) -> str:
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


def _admin(server_url: str, statement: sql.Composable) -> None:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL to the maintenance database of a real PostgreSQL server."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield _on_database(configured, make_url(configured).database or "postgres")
        return
    server = EmbeddedPostgres(Path(TEST_DATADIR))
    already_running = (TEST_DATADIR / "postmaster.pid").exists()
    server.start(durable=False)
    yield server.url("postgres")
    if not already_running:
        server.stop()


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """A database migrated to head once per session; every test clones it."""
    name = f"pg_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _admin(pg_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    upgrade(_on_database(pg_server_url, name))
    yield name
    _admin(
        pg_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"pg_empty_{uuid.uuid4().hex[:12]}"
    _admin(pg_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _on_database(pg_server_url, name)
    _admin(
        pg_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own: other processes may connect to it too."""
    name = f"pg_test_{uuid.uuid4().hex[:12]}"
    _admin(
        pg_server_url,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_database)
        ),
    )
    yield _on_database(pg_server_url, name)
    _admin(
        pg_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


def build_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test: explicit, never read from a `.env` file."""
    ctct = overrides.pop("ctct", {})
    assert isinstance(ctct, dict)
    values: dict[str, object] = {
        "environment": "test",
        "database": {"url": database_url, "pool_size": 5, "max_overflow": 5},
        "ctct": {**TEST_CREDENTIALS, **ctct},
        "provision": {"encryption_keys": [TEST_FERNET_KEY]},
        "sandbox_control": True,
        # Many workers run at once in the suite: each listens on a free loopback port.
        "worker": {"host": "127.0.0.1", "port": 0},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return build_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The API with its lifespan running."""
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http


ApiKeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def api_key(sessionmaker: async_sessionmaker[AsyncSession]) -> ApiKeyFactory:
    """Create an API key with the given scopes and return its secret."""

    async def make(*scopes: Scope, name: str | None = None) -> str:
        async with sessionmaker() as session, session.begin():
            return await keys_service.create_key(
                session, name or f"test-{uuid.uuid4().hex[:8]}", list(scopes)
            )

    return make


Headers = dict[str, str]


@pytest.fixture
async def reader(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ, name='reader')}"}


@pytest.fixture
async def decider(api_key: ApiKeyFactory) -> Headers:
    key = await api_key(Scope.CLIENTS_DECIDE, Scope.CLIENTS_READ, name="ops-alice")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def registrar(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_REGISTER, name='product')}"}


Seed = Callable[..., Awaitable[None]]


@pytest.fixture
def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> Seed:
    """Record one observation about an account, as an audit would."""

    async def observe(account_id: str, membership: Membership, **attributes: str) -> None:
        async with sessionmaker() as session, session.begin():
            await clients_service.record_evidence(
                session,
                account_id,
                Evidence(
                    membership,
                    VerifiedVia.PARTNER_LIST,
                    f"seed_{membership.value}",
                    MirroredAttributes(**attributes),
                ),
                clients_service.Actor(EventSource.AUDIT, name="seed"),
            )

    return observe


# CTCT budget settings that keep the budget out of a test's way (the budget has its own tests).
FAST_CTCT: dict[str, object] = {
    "rate_per_second": 1000.0,
    "daily_quota": 100_000,
    "interactive_reserve": 0,
    "timeout_seconds": 2.0,
    "read_retries": 0,
}


@pytest.fixture
def sandbox() -> SandboxState:
    """A fresh CTCT sandbox whose own rate limit is out of the way."""
    return new_sandbox(rate_per_second=100_000)


@pytest.fixture
def sandboxed_settings(database_url: str) -> Settings:
    """Test settings with a fast, generous CTCT budget and the sandbox's partner id as ours."""
    from app.sandbox.partners import OUR_ENCODED_PARTNER_ID

    return build_settings(database_url, ctct={**FAST_CTCT, "partner_id": OUR_ENCODED_PARTNER_ID})


@pytest.fixture
async def sandboxed_app(
    sandboxed_settings: Settings, sandbox: SandboxState
) -> AsyncIterator[FastAPI]:
    """The API (lifespan running) with the sandbox, served in-process, as its CTCT."""
    from app.main import create_app

    application = create_app(
        sandboxed_settings, ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox))
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def sandboxed_client(sandboxed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `sandboxed_app`."""
    transport = httpx.ASGITransport(app=sandboxed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http
