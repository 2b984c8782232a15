"""The per-process decision cache: a bounded LRU of what the store said about each client.

It holds the store's facts (status, verified_at), not the decision, because staleness depends on
the clock. It is trusted only while the LISTEN connection has recently proved it is alive (see
`app.access.listener`); otherwise callers bypass it. A fill that raced with an invalidation is
dropped: `generation` moves on every invalidation, and `put` refuses a value read under an older
generation, so a row read just before a commit cannot outlive the NOTIFY of that commit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the store says about one client."""

    status: str
    verified_at: datetime | None
    # `verified_at` as epoch seconds and as ISO text, computed once per fill, not per request.
    verified_ts: float | None
    verified_iso: str | None
    # The decision as response bytes, by staleness, encoded on first use (a snapshot belongs to
    # one client), so a cache hit sends bytes it already has.
    bodies: dict[bool, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, status: str, verified_at: datetime | None) -> Snapshot:
        """A snapshot with its derived fields filled in."""
        if verified_at is None:
            return cls(status, None, None, None)
        return cls(status, verified_at, verified_at.timestamp(), verified_at.isoformat())


class DecisionCache:
    """A bounded LRU from encoded_account_id to `Snapshot`, usable only while trusted."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[str, Snapshot] = OrderedDict()
        self.generation = 0
        # monotonic time until which entries may be served; 0 means "never" (not listening).
        self._trusted_until = 0.0
        # Called with a client's id when a cached entry is invalidated (to re-read it behind).
        self.on_invalidated: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def trusted(self) -> bool:
        """Whether the invalidation feed is known to be alive right now."""
        return self.max_size > 0 and time.monotonic() < self._trusted_until

    def trust_until(self, deadline: float) -> None:
        """The listener proved liveness; entries may be served until `deadline` (monotonic)."""
        self._trusted_until = max(self._trusted_until, deadline)

    def distrust(self) -> None:
        """The invalidation feed is gone: stop serving and forget everything."""
        self._trusted_until = 0.0
        self.clear()

    def get(self, key: str) -> Snapshot | None:
        """The cached snapshot, or None on a miss or while untrusted."""
        if not self.trusted:
            return None
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, value: Snapshot, generation: int) -> None:
        """Remember `value` if no invalidation happened since it was read under `generation`."""
        if generation != self.generation or not self.trusted:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def invalidate(self, key: str) -> None:
        """Forget one client (its status changed somewhere)."""
        self.generation += 1
        if self._entries.pop(key, None) is not None and self.on_invalidated is not None:
            self.on_invalidated(key)

    def clear(self) -> None:
        """Forget every client."""
        self.generation += 1
        self._entries.clear()
