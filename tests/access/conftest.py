"""Fixtures for the access tests: the API with the sandbox as its CTCT, seeded clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership
from app.clients.models import Client, ClientStatus, EventSource, VerifiedVia
from app.db import utcnow
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import ApiKeyFactory, build_settings, new_sandbox

FAST_CTCT = {
    "rate_per_second": 1000.0,
    "daily_quota": 100_000,
    "interactive_reserve": 0,
    "timeout_seconds": 2.0,
    "read_retries": 0,
}

MEMBERSHIP_BY_STATUS = {
    ClientStatus.APPROVED: Membership.OURS,
    ClientStatus.OTHER_PARTNER: Membership.OTHER_PARTNER,
    ClientStatus.UNAFFILIATED: Membership.NO_PARTNER,
    ClientStatus.UNVERIFIED: Membership.UNKNOWN,
}


def access_settings(database_url: str, **overrides: object) -> Settings:
    """Test settings with a fast, generous CTCT budget and a short re-probe cooldown."""
    values: dict[str, object] = {
        "ctct": FAST_CTCT,
        "access": {"probe_timeout": 2.0, "cache_size": 1000, "reprobe_cooldown": 0.2},
    }
    values.update(overrides)
    return build_settings(database_url, **values)


@pytest.fixture
def sandbox() -> SandboxState:
    return new_sandbox()


AppFactory = Callable[..., Awaitable[FastAPI]]


@pytest.fixture
async def make_app(database_url: str, sandbox: SandboxState) -> AsyncIterator[AppFactory]:
    """Start the API (lifespan running) with `overrides` on the test settings."""
    from app.main import create_app

    running: list[tuple[FastAPI, object]] = []

    async def make(**overrides: object) -> FastAPI:
        application = create_app(
            access_settings(database_url, **overrides),
            ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
        )
        context = application.router.lifespan_context(application)
        await context.__aenter__()
        running.append((application, context))
        listener_ready = application.state.resources.access
        assert listener_ready is not None
        return application

    yield make
    for _, context in reversed(running):
        await context.__aexit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
async def app(make_app: AppFactory) -> FastAPI:
    return await make_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http


@pytest.fixture
async def checker(api_key: ApiKeyFactory) -> dict[str, str]:
    """Headers of a key with `access:check`."""
    return {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}


SeedClient = Callable[..., Awaitable[str]]


@pytest.fixture
def seed_client(sessionmaker: async_sessionmaker[AsyncSession]) -> SeedClient:
    """Put a client with `status` into the store (verified `age` ago); returns its id."""

    async def seed(
        account_id: str,
        status: ClientStatus,
        *,
        age: timedelta = timedelta(0),
    ) -> str:
        async with sessionmaker() as session, session.begin():
            if status is ClientStatus.BILLING_APPROVED:
                await record(session, account_id, Membership.OTHER_PARTNER)
                await clients_service.approve_billing(
                    session,
                    account_id,
                    note="test",
                    actor=clients_service.Actor(EventSource.PERSON, name="test"),
                )
            else:
                await record(session, account_id, MEMBERSHIP_BY_STATUS[status])
            verified_at: datetime | None = None if status is ClientStatus.UNVERIFIED else utcnow()
            if verified_at is not None:
                await session.execute(
                    update(Client)
                    .where(Client.encoded_account_id == account_id)
                    .values(verified_at=verified_at - age)
                    .execution_options(synchronize_session=False)
                )
        return account_id

    return seed


async def record(session: AsyncSession, account_id: str, membership: Membership) -> None:
    """Record one observation of CTCT about `account_id` as a probe would."""
    await clients_service.record_evidence(
        session,
        account_id,
        Evidence(membership, VerifiedVia.PLAN_PROBE, f"test_{membership.value}"),
        clients_service.Actor(EventSource.PROBE, name="test"),
    )
