"""CTCT's per-API-key limits: a sliding one-second window and a daily quota (UTC days)."""

from __future__ import annotations

from collections import deque
from datetime import date, datetime
from enum import StrEnum

DEFAULT_RATE_PER_SECOND = 4
DEFAULT_DAILY_QUOTA = 10_000
WINDOW_SECONDS = 1.0


class Verdict(StrEnum):
    ADMITTED = "admitted"
    THROTTLED = "throttled"
    QUOTA_EXCEEDED = "quota_exceeded"


class RateLimiter:
    """Counts admitted calls per API key; refused calls count against nothing."""

    def __init__(
        self,
        rate_per_second: int = DEFAULT_RATE_PER_SECOND,
        daily_quota: int = DEFAULT_DAILY_QUOTA,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.daily_quota = daily_quota
        self._recent: dict[str, deque[float]] = {}
        self._days: dict[str, tuple[date, int]] = {}

    def admit(self, api_key: str, now: datetime) -> Verdict:
        """Admit and count one call at `now`, or say which limit refuses it."""
        today = now.date()
        day, used = self._days.get(api_key, (today, 0))
        if day != today:
            used = 0
        if used >= self.daily_quota:
            return Verdict.QUOTA_EXCEEDED
        instant = now.timestamp()
        recent = self._recent.setdefault(api_key, deque())
        while recent and recent[0] <= instant - WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= self.rate_per_second:
            return Verdict.THROTTLED
        recent.append(instant)
        self._days[api_key] = (today, used + 1)
        return Verdict.ADMITTED

    def used_today(self, api_key: str, now: datetime) -> int:
        """Calls admitted for `api_key` on the UTC day of `now`."""
        day, used = self._days.get(api_key, (now.date(), 0))
        return used if day == now.date() else 0

    def usage(self, now: datetime) -> dict[str, int]:
        """Calls admitted today, per API key."""
        return {key: self.used_today(key, now) for key in self._days}

    def clear(self) -> None:
        """Forget every count (the limits stay)."""
        self._recent.clear()
        self._days.clear()
