"""The slot arithmetic of the paced CTCT budget (`app.ctct.budget`), free of I/O.

`recent` is the last R = floor(rate) slots taken by any process, oldest first; slots may lie
in the future (reserved, not yet sent). See docs/ctct.md for why the rules are these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

# No slot closer than this many intervals after the last one: the calls after a late one take
# its lateness back this fast at most, and callers alone in several processes (each worker's
# first job) never burst together.
CATCH_UP_SPACING = 0.5


def next_slot(
    now: datetime,
    recent: Sequence[datetime],
    *,
    paced_until: datetime | None,
    interval: timedelta,
    per_window: int,
    even: bool,
) -> datetime:
    """The earliest slot, never before the last one taken.

    Never R+1 slots within R intervals on record (CTCT's window with our margin), and never
    closer than `CATCH_UP_SPACING` intervals after the last one. When `even` (other callers
    queue behind this one), also not before `paced_until`: the even schedule, one interval per
    grant, which late calls do not move, so the calls after a late one take its lateness back
    instead of inheriting it. A caller alone (a sequential reader whose last answer came late)
    is held to the window and the spacing only, so it takes the slots it missed sooner.
    """
    slot = max(now, paced_until) if even and paced_until is not None else now
    if recent:
        slot = max(slot, recent[-1] + interval * CATCH_UP_SPACING)
    if len(recent) >= per_window:
        slot = max(slot, recent[-per_window] + interval * per_window)
    return slot


def paced_after(
    now: datetime, slot: datetime, paced_until: datetime | None, *, interval: timedelta
) -> datetime:
    """The schedule once `slot` is granted: one interval after the call's place on it (its due
    time, or when it asked if later), or after one interval before its slot if the window or
    the spacing pushed it later than that: at most one interval of lateness is taken back."""
    due = now if paced_until is None else max(now, paced_until)
    return max(due, slot - interval) + interval


def moved(
    recent: Sequence[datetime], slot: datetime, went: datetime, per_window: int
) -> list[datetime]:
    """`recent` with `slot` replaced by the time its call really went."""
    return sorted([*(t for t in recent if t != slot), went])[-per_window:]
