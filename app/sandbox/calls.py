"""The call log: every CTCT-facing request the sandbox answered (control calls excluded)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.sandbox.timefmt import iso

MAX_CALLS = 100_000


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One answered (or deliberately unanswered) request."""

    method: str
    path: str
    query: str
    status: int
    at: datetime
    api_key: str | None
    fault: str | None
    # When the request arrived; when its client went away before the answer (a timeout, a
    # lost response); the login name a create asked for. For proving sends never overlap.
    arrived_at: datetime | None = None
    left_at: datetime | None = None
    login_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the control API shows it."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "at": iso(self.at),
            "api_key": self.api_key,
            "fault": self.fault,
            "arrived_at": iso(self.arrived_at) if self.arrived_at else None,
            "left_at": iso(self.left_at) if self.left_at else None,
            "login_name": self.login_name,
        }


class CallLog:
    """The most recent `MAX_CALLS` calls, oldest first."""

    def __init__(self, limit: int = MAX_CALLS) -> None:
        self._records: deque[CallRecord] = deque(maxlen=limit)

    def record(self, call: CallRecord) -> None:
        """Append one call."""
        self._records.append(call)

    def calls(self, path_prefix: str = "", method: str | None = None) -> list[CallRecord]:
        """Calls whose path starts with `path_prefix` (and of `method`, if given)."""
        selected: Iterable[CallRecord] = self._records
        wanted = method.upper() if method else None
        return [
            call
            for call in selected
            if call.path.startswith(path_prefix) and (wanted is None or call.method == wanted)
        ]

    def clear(self) -> None:
        """Forget every call."""
        self._records.clear()
