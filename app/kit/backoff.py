"""Backoff between attempts: capped exponential with full jitter above a floor.

The one backoff function of the project (CTCT read retries, provisioning retries, webhook
deliveries, reconnects). Full jitter spreads retries of many waiters (AWS architecture blog);
the floor guarantees that nothing is ever rescheduled for "now" in a loop.
"""

from __future__ import annotations

import random

_MAX_EXPONENT = 62
_default_rng = random.Random()  # noqa: S311 - jitter, not cryptography


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    floor: float = 0.0,
    factor: float = 2.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry `attempt` (0-based): floor <= delay <= min(cap, base*factor^n)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = max(floor, min(cap, base * factor ** min(attempt, _MAX_EXPONENT)))
    return (rng or _default_rng).uniform(floor, ceiling)
