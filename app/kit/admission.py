"""A count of the work under way in this process that admits more only while it fits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Admission:
    """Admits work while fewer than a capacity are under way; never waits, only says no."""

    def __init__(self) -> None:
        self._under_way = 0

    @contextmanager
    def enter(self, capacity: int) -> Iterator[bool]:
        """True, and counted until the block ends, if fewer than `capacity` are under way."""
        if self._under_way >= capacity:
            yield False
            return
        self._under_way += 1
        try:
            yield True
        finally:
            self._under_way -= 1
