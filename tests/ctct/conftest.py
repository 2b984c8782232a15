"""Fixtures for the CTCT client tests: settings, a movable clock, the sandbox behind the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.auth import PartnerTokenProvider
from app.ctct.budget import CallBudget
from app.ctct.client import CtctClient
from app.db import utcnow
from app.sandbox.app import create_sandbox_app
from app.sandbox.calls import CallRecord
from app.sandbox.state import SandboxState
from app.settings import CtctSettings


def ctct_settings(**overrides: object) -> CtctSettings:
    """CTCT settings for a test: the sandbox's credentials, generous limits unless overridden."""
    values: dict[str, object] = {
        "rate_per_second": 1000.0,
        "daily_quota": 100_000,
        "interactive_reserve": 0,
        "retry_reserve": 0,
        "timeout_seconds": 2.0,
        "read_retries": 3,
    }
    values.update(overrides)
    return CtctSettings.model_validate(values)


@dataclass
class FakeTime:
    """A UTC clock that only moves when told to, and a `sleep` that moves it instead of waiting."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    slept: list[float] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@dataclass
class ManualClock:
    """A monotonic clock for the token provider that moves only when told to."""

    value: float = 1_000.0

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@dataclass
class Harness:
    """A CTCT client wired to an in-process sandbox and a real Postgres budget."""

    client: CtctClient
    sandbox: SandboxState
    budget: CallBudget
    tokens: PartnerTokenProvider
    token_clock: ManualClock
    retry_sleeps: list[float]
    settings: CtctSettings

    def calls(self, path_prefix: str = "", method: str | None = None) -> list[CallRecord]:
        """What the sandbox received (its call log)."""
        return self.sandbox.calls.calls(path_prefix, method)

    def token_calls(self) -> int:
        return len(self.calls("/oauth2/token"))


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def sandbox() -> SandboxState:
    """A fresh sandbox whose own rate limit is out of the way (the budget tests set theirs)."""
    return SandboxState(rate_per_second=100_000)


@pytest.fixture
async def make_harness(engine: AsyncEngine, sandbox: SandboxState) -> AsyncIterator[HarnessFactory]:
    """Build a client against the sandbox; `transport` wraps or replaces the ASGI transport."""
    opened: list[CtctClient] = []

    def make(
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        budget_clock: Callable[[], datetime] | None = None,
        **overrides: object,
    ) -> Harness:
        settings = ctct_settings(**overrides)
        http = httpx.AsyncClient(
            transport=transport or httpx.ASGITransport(app=create_sandbox_app(sandbox))
        )
        token_clock = ManualClock()
        tokens = PartnerTokenProvider(http, settings, clock=token_clock)
        budget = CallBudget(engine, settings, clock=budget_clock or utcnow)
        sleeps: list[float] = []

        async def record_sleep(seconds: float) -> None:
            sleeps.append(seconds)
            await asyncio.sleep(0)

        client = CtctClient(http, settings, tokens, budget, sleep=record_sleep, owns_http=True)
        opened.append(client)
        return Harness(client, sandbox, budget, tokens, token_clock, sleeps, settings)

    yield make
    for client in opened:
        await client.aclose()


def provision_body(login_name: str = "hank_fresh_fruit", **overrides: object) -> dict[str, object]:
    """A create body CTCT accepts."""
    body: dict[str, object] = {
        "contact_email": "hank.smith@example.com",
        "contact_phone": "111-333-5656",
        "country_code": "US",
        "state_code": "MA",
        "organization_name": "Hanks Fresh Fruit",
        "login_name": login_name,
        "password": "Tr0ub4dor&3-horse",
        "first_name": "Hank",
        "last_name": "Smith",
        "time_zone_id": "US/Eastern",
        "website": "http://www.example.com",
        "billing_locale": "en_US",
        "managed_site_owner": True,
    }
    body.update(overrides)
    return body
