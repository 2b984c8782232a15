"""Provisioning fixtures: the API (and, when asked, a worker) wired to an in-process sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from app.db import libpq_url
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import FAST_CTCT, TEST_FERNET_KEY, ApiKeyFactory, build_settings, new_sandbox

SANDBOX = "http://sandbox.test"
PASSWORD = "Xq7-unguessable-Secret!"


def body_for(login_name: str, **changes: Any) -> dict[str, Any]:
    """A valid create body with a password that is easy to search for."""
    body: dict[str, Any] = {
        "contact_email": f"{login_name}@example.com",
        "country_code": "US",
        "state_code": "MA",
        "login_name": login_name,
        "password": PASSWORD,
        "organization_name": "Fresh Fruit",
    }
    body.update(changes)
    return body


def unique_login(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def provisioning_settings(database_url: str, base_url: str = SANDBOX, **overrides: Any) -> Settings:
    """Fast retries and short timeouts, CTCT pointed at a sandbox."""
    provision = {
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.3,
        "lease_seconds": 10.0,
        "wait_seconds": 3.0,
        "worker_concurrency": 4,
        "worker_poll_seconds": 0.2,
        "reconcile_interval_seconds": 0.2,
        **overrides.pop("provision", {}),
    }
    ctct = {
        **FAST_CTCT,
        "base_url": f"{base_url}/v3",
        "token_url": f"{base_url}/oauth2/token",
        "timeout_seconds": 1.0,
        **overrides.pop("ctct", {}),
    }
    provision["encryption_keys"] = provision.get("encryption_keys", [TEST_FERNET_KEY])
    return build_settings(database_url, provision=provision, ctct=ctct, **overrides)


@pytest.fixture
def sandbox_state() -> SandboxState:
    return new_sandbox(rate_per_second=100_000)


@pytest.fixture
def sandbox_transport(sandbox_state: SandboxState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_sandbox_app(sandbox_state))


@pytest.fixture
async def sandbox(sandbox_transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's control API (`/_sandbox/...`)."""
    async with httpx.AsyncClient(transport=sandbox_transport, base_url=SANDBOX) as http:
        yield http


@pytest.fixture
def settings(database_url: str) -> Settings:
    return provisioning_settings(database_url)


@pytest.fixture
async def app(settings: Settings, sandbox_transport: httpx.ASGITransport) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(settings, ctct_transport=sandbox_transport)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def provisioner_key(api_key: ApiKeyFactory) -> str:
    return await api_key(Scope.ACCOUNTS_PROVISION, name="backend")


@pytest.fixture
async def api(client: httpx.AsyncClient, provisioner_key: str) -> httpx.AsyncClient:
    """The API client, authenticated with an accounts:provision key."""
    client.headers["Authorization"] = f"Bearer {provisioner_key}"
    return client


WorkerStarter = Callable[..., Awaitable[None]]


@pytest.fixture
async def worker(
    settings: Settings, sandbox_transport: httpx.ASGITransport
) -> AsyncIterator[WorkerStarter]:
    """Start an in-process worker on demand (on the in-process sandbox unless given other
    settings); every one started is stopped gracefully at the end."""
    from app.worker.main import run_worker

    tasks: list[asyncio.Task[None]] = []

    async def start(custom: Settings | None = None) -> None:
        transport = None if custom is not None else sandbox_transport
        tasks.append(
            asyncio.create_task(
                run_worker(
                    custom or settings, ctct_transport=transport, install_signal_handlers=False
                )
            )
        )

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sandbox_accounts(sandbox: httpx.AsyncClient, login_name: str) -> list[dict[str, Any]]:
    response = await sandbox.get("/_sandbox/accounts", params={"login_name": login_name})
    response.raise_for_status()
    accounts: list[dict[str, Any]] = response.json()["accounts"]
    return accounts


async def create_calls(sandbox: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await sandbox.get(
        "/_sandbox/calls", params={"path_prefix": "/v3/partner/accounts", "method": "POST"}
    )
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()["calls"]
    return calls


def table_rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]
