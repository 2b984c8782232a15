"""The sandbox's time: real UTC time moved by an offset, so tests can jump ahead."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from app.sandbox.errors import InvalidInput


class SandboxClock:
    """`now()` is real UTC time plus an offset; `advance` moves it, `freeze` stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None

    def now(self) -> datetime:
        """The sandbox's current time (aware, UTC)."""
        base = self._frozen_at if self._frozen_at is not None else datetime.now(UTC)
        return base + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move time forward by `seconds` and return the new now."""
        if seconds < 0:
            raise InvalidInput("the sandbox clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def freeze(self) -> datetime:
        """Stop real time from passing (only `advance` moves the clock); return now."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = datetime.now(UTC)
        return self.now()

    @property
    def frozen(self) -> bool:
        """Whether only `advance` moves the clock."""
        return self._frozen_at is not None

    def reset(self) -> None:
        """Back to real time, no offset."""
        with self._lock:
            self._offset = timedelta(0)
            self._frozen_at = None
