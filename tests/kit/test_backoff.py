"""The one backoff: capped exponential with full jitter above a floor."""

from __future__ import annotations

import random

import pytest

from app.kit.backoff import backoff_delay


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    rng = random.Random(7)
    delays = [[backoff_delay(n, base=1.0, cap=10.0, rng=rng) for _ in range(200)] for n in range(8)]

    for attempt, samples in enumerate(delays):
        ceiling = min(10.0, 2.0**attempt)
        assert all(0.0 <= d <= ceiling for d in samples)
        assert max(samples) > ceiling * 0.8
    assert backoff_delay(10_000, base=1.0, cap=30.0) <= 30.0
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, base=1.0, cap=1.0)


def test_backoff_never_waits_less_than_the_floor_even_above_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(5.0, 0.1 * 2.0**attempt)
        samples = [
            backoff_delay(attempt, base=0.1, cap=5.0, floor=0.05, rng=rng) for _ in range(200)
        ]
        assert all(0.05 <= d <= ceiling for d in samples)
        assert min(samples) < 0.05 + (ceiling - 0.05) * 0.2
    assert backoff_delay(0, base=1.0, cap=2.0, floor=3.0, rng=rng) == 3.0
