"""Fixtures for the CTCT client tests: settings, a movable clock, the sandbox behind the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from app.settings import CtctSettings


def ctct_settings(**overrides: object) -> CtctSettings:
    """CTCT settings for a test: the sandbox's credentials, generous limits unless overridden."""
    values: dict[str, object] = {
        "rate_per_second": 1000.0,
        "daily_quota": 100_000,
        "interactive_reserve": 0,
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
