"""Backoff between attempts: capped exponential with full jitter (AWS architecture blog)."""

from __future__ import annotations

import random

_MAX_EXPONENT = 62
_default_rng = random.Random()  # noqa: S311 - jitter, not cryptography


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): uniform(0, min(cap, base*2^n))."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap, base * 2.0 ** min(attempt, _MAX_EXPONENT))
    return (rng or _default_rng).uniform(0.0, ceiling)
