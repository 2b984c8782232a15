"""The slot arithmetic of the paced CTCT budget (`app.ctct.budget`), free of I/O.

`recent` is the last R = floor(rate) slots taken by any process, oldest first; slots may lie
in the future (reserved, not yet sent). See docs/ctct.md for why the rules are these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def next_slot(
    now: datetime,
    recent: Sequence[datetime],
    *,
    interval: timedelta,
    per_window: int,
    even: bool,
) -> datetime:
    """The earliest slot, never before the last one taken.

    Never R+1 slots within R intervals (CTCT's window with our margin); when `even` (other
    callers queue behind this one), never k+1 within k intervals for any k, which spaces the
    slots one interval apart. A caller alone (a sequential reader whose last answer came late)
    may thus take the slots it missed at once, as far as the window allows.
    """
    slot = max(now, recent[-1]) if recent else now
    first_k = 1 if even else per_window
    for k in range(first_k, min(len(recent), per_window) + 1):
        slot = max(slot, recent[-k] + interval * k)
    return slot


def moved(
    recent: Sequence[datetime], slot: datetime, went: datetime, per_window: int
) -> list[datetime]:
    """`recent` with `slot` replaced by the time its call really went."""
    return sorted([*(t for t in recent if t != slot), went])[-per_window:]
