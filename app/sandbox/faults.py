"""Faults the control API injects, each scoped to an operation and bounded by count or time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.sandbox.errors import InvalidInput
from app.sandbox.timefmt import iso


class FaultKind(StrEnum):
    UNAVAILABLE = "unavailable"
    LOST_RESPONSE = "lost_response"
    LATENCY = "latency"
    THROTTLE = "throttle"
    QUOTA = "quota"
    SERVER_ERROR = "server_error"
    # The other error statuses CTCT's contract lists, answered as CTCT words them.
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


class Operation(StrEnum):
    CREATE = "create"
    LIST = "list"
    PLAN = "plan"
    CANCEL = "cancel"
    SUMMARY = "summary"
    WEBHOOKS = "webhooks"
    TOKEN = "token"  # noqa: S105 - an operation name, not a secret
    ALL = "all"


@dataclass(slots=True, eq=False)
class Fault:
    """One injected fault; it applies while it has calls left and its window is open."""

    id: int
    kind: FaultKind
    operation: Operation
    remaining: int | None
    until: datetime | None
    delay_seconds: float
    created_at: datetime
    removed: bool = False
    hits: int = 0
    # Matching calls to let through untouched before the fault starts ("503 at page 7": after=6).
    after: int = 0

    def active(self, now: datetime) -> bool:
        """Whether the fault still applies at `now`."""
        if self.removed or (self.remaining is not None and self.remaining <= 0):
            return False
        return self.until is None or now < self.until

    def applies_to(self, operation: Operation) -> bool:
        """Whether the fault targets `operation`."""
        return self.operation in (operation, Operation.ALL)

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "operation": self.operation.value,
            "remaining": self.remaining,
            "until": iso(self.until),
            "delay_seconds": self.delay_seconds,
            "hits": self.hits,
            "after": self.after,
            "active": self.active(now),
        }


@dataclass(slots=True)
class FaultPlan:
    """What the faults decide for one call: a delay, then at most one failing fault."""

    delay_seconds: float = 0.0
    fault: Fault | None = None


class FaultBook:
    """The injected faults, in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(
        self,
        kind: FaultKind,
        operation: Operation,
        now: datetime,
        *,
        count: int | None = None,
        seconds: float | None = None,
        delay_seconds: float = 0.0,
        after: int = 0,
    ) -> Fault:
        """Add a fault for the next `count` calls and/or `seconds` (neither: until cleared),
        starting after `after` matching calls have passed untouched."""
        if after < 0:
            raise InvalidInput("after must not be negative")
        if count is not None and count < 1:
            raise InvalidInput("count must be at least 1")
        if seconds is not None and seconds <= 0:
            raise InvalidInput("seconds must be positive")
        if kind is FaultKind.LATENCY and delay_seconds <= 0:
            raise InvalidInput("a latency fault needs a positive delay_seconds")
        until = now + timedelta(seconds=seconds) if seconds is not None else None
        fault = Fault(self._next_id, kind, operation, count, until, delay_seconds, now, after=after)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def take(self, operation: Operation, now: datetime) -> FaultPlan:
        """Decide the faults for one call of `operation`, spending their counts."""
        plan = FaultPlan()
        for fault in self._faults:
            if not fault.active(now) or not fault.applies_to(operation):
                continue
            if fault.after > 0:
                fault.after -= 1
                continue
            if fault.kind is FaultKind.LATENCY:
                plan.delay_seconds += fault.delay_seconds
                self._spend(fault)
            elif plan.fault is None:
                plan.fault = fault
                self._spend(fault)
        return plan

    def faults(self) -> list[Fault]:
        """Every fault added since the last clear, spent or not."""
        return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        """Remove one fault; False when there is none with that id."""
        for fault in self._faults:
            if fault.id == fault_id:
                fault.removed = True
                self._faults.remove(fault)
                return True
        return False

    def clear(self) -> None:
        """Remove every fault."""
        for fault in self._faults:
            fault.removed = True
        self._faults.clear()

    @staticmethod
    def _spend(fault: Fault) -> None:
        fault.hits += 1
        if fault.remaining is not None:
            fault.remaining -= 1
