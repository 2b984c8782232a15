"""The CTCT budget's vocabulary: a day's use, a key's row identity.

Apart from `app.ctct.budget` (the granting itself) so that the stats reading a day's use need
not import the pacing machinery. Who calls (`Priority`) and its rules are `app.ctct.priorities`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class BudgetSnapshot:
    """Today's (UTC) use of the budget, for /v1/stats."""

    day: date
    used: int
    daily_quota: int
    remaining_interactive: int
    remaining_background: int
    penalty_ends_at: datetime | None
    remaining_retry: int = 0


def key_fingerprint(api_key: str) -> str:
    """The SHA-256 hex digest that identifies an API key's row."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def next_utc_midnight(now: datetime) -> datetime:
    """When the UTC day that contains `now` ends (CTCT's daily quota resets then)."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)
