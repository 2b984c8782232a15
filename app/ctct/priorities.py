"""Who spends the CTCT budget, and who goes first (DESIGN §5, "Upstream budget").

The budget (`app.ctct.budget`) paces calls and counts the day; this module says what each
priority may spend of the day and when a caller must stand back for a higher one:

- daily shares: INTERACTIVE and FIRST_ATTEMPT may spend the whole quota; RETRY all but
  `interactive_reserve` (the share that keeps access probes answering); BACKGROUND all but that
  and `retry_reserve`;
- who goes first: a caller that must wait for a slot writes until when it waits in the budget
  row (`<priority>_waiting_until`) and withdraws it once it has reserved its slot; a caller of
  a lower priority that finds such a time in the future stands back until then, across
  processes. A caller that a higher priority could still
  overtake (any but the highest) does not reserve a slot far ahead: it waits until the slot is
  near and asks again, so a higher priority that asks meanwhile is served first.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from app.settings import CtctSettings

# How long past its planned slot a waiting caller keeps lower priorities back: a loaded event
# loop wakes late, and a lower priority must not take the slot meanwhile.
PRIORITY_HOLD_SECONDS = 0.25
# A caller that a higher priority may overtake reserves a slot at most this far ahead; a later
# one it waits for (unreserved) and asks again then.
RESERVE_AHEAD_SECONDS = 0.02


class Priority(enum.StrEnum):
    """Who is calling, in the order calls are served.

    - INTERACTIVE: access probes (a person or a product waits, within a couple of seconds) and a
      person's lifecycle calls; may spend the whole daily quota.
    - FIRST_ATTEMPT: a create's first send; may spend the whole daily quota, but waits behind
      probes (its caller gets a 202 and the worker carries on if it must wait too long).
    - RETRY: provisioning retries and the reconciliation read; never the interactive reserve.
    - BACKGROUND: the audit and background refreshes; neither reserve.
    """

    INTERACTIVE = "interactive"
    FIRST_ATTEMPT = "first_attempt"
    RETRY = "retry"
    BACKGROUND = "background"

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _RANKS[self]


_RANKS = {
    Priority.INTERACTIVE: 0,
    Priority.FIRST_ATTEMPT: 1,
    Priority.RETRY: 2,
    Priority.BACKGROUND: 3,
}
# The budget row's column where a waiting caller of this priority holds lower ones back.
WAITING_COLUMNS = {
    Priority.INTERACTIVE: "interactive_waiting_until",
    Priority.FIRST_ATTEMPT: "first_attempt_waiting_until",
    Priority.RETRY: "retry_waiting_until",
}


def daily_limits(settings: CtctSettings) -> dict[Priority, int]:
    """How many calls of the UTC day each priority may have been granted, at most."""
    quota = settings.daily_quota
    after_reserve = max(0, quota - settings.interactive_reserve)
    return {
        Priority.INTERACTIVE: quota,
        Priority.FIRST_ATTEMPT: quota,
        Priority.RETRY: after_reserve,
        Priority.BACKGROUND: max(0, after_reserve - settings.retry_reserve),
    }


def may_be_overtaken(priority: Priority) -> bool:
    """Whether a higher priority may still ask for the slot this caller waits for."""
    return priority.rank > 0


def stand_back_seconds(row: Any, priority: Priority, now: datetime) -> float | None:
    """How long `priority` must stand back for a higher priority waiting (read from the row)."""
    until: list[datetime] = [
        getattr(row, column)
        for waiting, column in WAITING_COLUMNS.items()
        if waiting.rank < priority.rank and getattr(row, column) is not None
    ]
    latest = max(until, default=None)
    if latest is None or latest <= now:
        return None
    return (latest - now).total_seconds()


def waiting_until(slot: datetime) -> datetime:
    """Until when a caller waiting for `slot` holds lower priorities back."""
    return slot + timedelta(seconds=PRIORITY_HOLD_SECONDS)
