"""The upstream call budget shared by every process and replica through Postgres (DESIGN §5).

Per CTCT API key (stored as a SHA-256 fingerprint, never the key):

- at most R = floor(rate_per_second) calls in any sliding window. The row keeps the times of the
  last R grants, and a call is granted only when the R-th newest is older than the window. A
  token bucket would not do: a full bucket plus a refill lets 2R-1 calls into some one-second
  window. The window is R/rate seconds plus WINDOW_SLACK_SECONDS (1.1 s at 4/s): CTCT counts
  arrivals, not our grants, and the slack absorbs the jitter between the two (scheduling, a
  connection being opened, network latency that varies, clock skew between replicas kept by
  NTP). 50 ms proved too little on a loaded machine even over loopback; the 9% of burst rate
  it costs matters little, since the daily quota (0.12 calls/s on average) binds first.
- at most `daily_quota` calls per UTC day, shared by priority (`Priority`): `interactive_reserve`
  only `INTERACTIVE` and `FIRST_ATTEMPT` calls may spend, `retry_reserve` none but those and
  `RETRY` calls; a caller whose share is gone gets `CtctBudgetExhausted` at once, with the time
  the day resets.
- who goes first: a caller that must wait for the rate announces it in the row
  (`<priority>_waiting_until`), and every lower priority stands back until it has been served,
  across processes. Within a process each priority queues for its own turn.
- a "penalty" (after a 429 from CTCT) that holds back every process until it ends.

Each attempt is one short transaction (`SELECT … FOR UPDATE` on the key's row); a caller that
must wait commits first and sleeps outside the transaction, and gets `CtctBudgetTimeout` instead
of waiting past its own `max_wait`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time as time_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.ctct.errors import CtctBudgetExhausted, CtctBudgetTimeout
from app.ctct.models import CtctBudget
from app.ctct.priorities import (
    WAITING_COLUMNS,
    Priority,
    daily_limits,
    stand_back_seconds,
    waiting_until,
)
from app.db import utcnow
from app.health.metrics import CTCT_QUOTA_LEFT, CTCT_RATE_LIMIT_WAITS
from app.settings import CtctSettings

__all__ = [
    "BudgetSnapshot",
    "CallBudget",
    "Priority",
    "key_fingerprint",
    "next_utc_midnight",
]

log = structlog.get_logger(__name__)

WINDOW_SLACK_SECONDS = 0.1
DEFAULT_MAX_WAIT_SECONDS = 30.0
MAX_WAKE_JITTER_SECONDS = 0.005

_table: Table = CtctBudget.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class BudgetSnapshot:
    """Today's (UTC) use of the budget, for /v1/stats."""

    day: date
    used: int
    daily_quota: int
    remaining_interactive: int
    remaining_background: int
    penalty_ends_at: datetime | None
    remaining_retry: int = 0


@dataclass(frozen=True)
class _Wait:
    seconds: float
    reason: str


def key_fingerprint(api_key: str) -> str:
    """The SHA-256 hex digest that identifies an API key's row."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def next_utc_midnight(now: datetime) -> datetime:
    """When the UTC day that contains `now` ends (CTCT's daily quota resets then)."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)


class CallBudget:
    """Grants CTCT calls within the shared per-second and per-day limits."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: CtctSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        default_max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
        window_slack_seconds: float = WINDOW_SLACK_SECONDS,
    ) -> None:
        self._engine = engine
        self._fingerprint = key_fingerprint(settings.api_key.get_secret_value())
        self._per_window = max(1, math.floor(settings.rate_per_second))
        self._window = timedelta(
            seconds=self._per_window / settings.rate_per_second + window_slack_seconds
        )
        self._daily_quota = settings.daily_quota
        self._limits = daily_limits(settings)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._default_max_wait = default_max_wait
        self._row_ready = False
        # One poller per priority per process, so a lower priority never blocks a higher one.
        self._turns = {priority: asyncio.Lock() for priority in Priority}

    @property
    def window_seconds(self) -> float:
        """The sliding window in which at most `calls_per_window` calls are granted."""
        return self._window.total_seconds()

    @property
    def calls_per_window(self) -> int:
        """How many calls the sliding window admits."""
        return self._per_window

    async def acquire(
        self, priority: Priority = Priority.INTERACTIVE, *, max_wait: float | None = None
    ) -> None:
        """Wait for a grant to make one CTCT call; raises instead of waiting past `max_wait`."""
        limit = self._default_max_wait if max_wait is None else max_wait
        started = time_module.monotonic()
        turn = self._turns[priority]
        await self._take_turn(turn, limit)
        try:
            await self._acquire_in_turn(priority, limit, time_module.monotonic() - started)
        finally:
            turn.release()

    async def _take_turn(self, turn: asyncio.Lock, limit: float) -> None:
        # One caller per process polls the shared row at a time; the rest queue here in order.
        # Without this, hundreds of waiters hammer the row lock and the event loop lags, and a
        # call granted in time reaches CTCT late enough to break CTCT's own one-second window.
        if not turn.locked():
            await turn.acquire()
            return
        try:
            async with asyncio.timeout(limit):
                await turn.acquire()
        except TimeoutError:
            raise CtctBudgetTimeout(
                f"other calls of this process hold the CTCT budget beyond this call's "
                f"{limit:.2f}s deadline",
                wait_seconds=limit,
            ) from None

    async def _acquire_in_turn(self, priority: Priority, limit: float, waited: float) -> None:
        while True:
            wait = await self._try_grant(priority)
            if wait is None:
                return
            if waited + wait.seconds > limit:
                log.info(
                    "ctct.budget.wait_refused",
                    reason=wait.reason,
                    wait_seconds=round(wait.seconds, 3),
                    priority=priority.value,
                )
                raise CtctBudgetTimeout(
                    f"the shared CTCT rate limit would delay this call {wait.seconds:.2f}s "
                    f"beyond its {limit:.2f}s deadline",
                    wait_seconds=wait.seconds,
                )
            CTCT_RATE_LIMIT_WAITS.labels(reason=wait.reason).inc()
            await self._announce(priority, wait)
            await self._sleep(wait.seconds)
            waited += wait.seconds

    async def penalize(self, seconds: float) -> None:
        """Hold back every process's calls for `seconds` (after CTCT answered 429)."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            await conn.execute(
                update(_table)
                .where(_table.c.key_fingerprint == self._fingerprint)
                .values(
                    penalty_ends_at=func.greatest(
                        func.coalesce(_table.c.penalty_ends_at, until), until
                    ),
                    updated_at=self._clock(),
                )
            )
        log.info("ctct.budget.penalized", seconds=round(seconds, 3))

    async def mark_exhausted(self) -> None:
        """Record that CTCT itself says today's quota is spent, so every process stops."""
        now = self._clock()
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            used = await conn.scalar(
                select(_table.c.quota_used)
                .where(
                    _table.c.key_fingerprint == self._fingerprint,
                    _table.c.quota_day == now.date(),
                )
                .with_for_update()
            )
            await conn.execute(
                update(_table)
                .where(_table.c.key_fingerprint == self._fingerprint)
                .values(
                    quota_day=now.date(),
                    quota_used=max(used or 0, self._daily_quota),
                    updated_at=now,
                )
            )
        CTCT_QUOTA_LEFT.set(0)
        log.warning("ctct.budget.exhausted_upstream", resets_at=next_utc_midnight(now).isoformat())

    async def snapshot(self) -> BudgetSnapshot:
        """Today's use of the budget as stored (no lock)."""
        now = self._clock()
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(_table.c.quota_day, _table.c.quota_used, _table.c.penalty_ends_at).where(
                        _table.c.key_fingerprint == self._fingerprint
                    )
                )
            ).one_or_none()
        today = now.date()
        used = row.quota_used if row is not None and row.quota_day == today else 0
        penalty = row.penalty_ends_at if row is not None else None
        CTCT_QUOTA_LEFT.set(max(0, self._daily_quota - used))
        return BudgetSnapshot(
            day=today,
            used=used,
            daily_quota=self._daily_quota,
            remaining_interactive=max(0, self._limit(Priority.INTERACTIVE) - used),
            remaining_background=max(0, self._limit(Priority.BACKGROUND) - used),
            penalty_ends_at=penalty if penalty is not None and penalty > now else None,
            remaining_retry=max(0, self._limit(Priority.RETRY) - used),
        )

    async def remaining_today(self, priority: Priority = Priority.INTERACTIVE) -> int:
        """Calls `priority` may still make today (UTC)."""
        snap = await self.snapshot()
        return {
            Priority.INTERACTIVE: snap.remaining_interactive,
            Priority.FIRST_ATTEMPT: snap.remaining_interactive,
            Priority.RETRY: snap.remaining_retry,
            Priority.BACKGROUND: snap.remaining_background,
        }[priority]

    def _limit(self, priority: Priority) -> int:
        return self._limits[priority]

    @staticmethod
    def _stand_back(row: Any, priority: Priority, now: datetime) -> _Wait | None:
        """A wait while a higher priority waits for its turn (it announced it in the row)."""
        seconds = stand_back_seconds(row, priority, now)
        return None if seconds is None else _Wait(seconds, "priority")

    async def _announce(self, priority: Priority, wait: _Wait) -> None:
        """Tell lower priorities that this caller waits, and until when, so they stand back."""
        column = WAITING_COLUMNS.get(priority)
        if column is None:
            return
        until = waiting_until(self._clock(), wait.seconds)
        current = _table.c[column]
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_table)
                .where(_table.c.key_fingerprint == self._fingerprint)
                .values({column: func.greatest(func.coalesce(current, until), until)})
            )

    async def _ensure_row(self, conn: AsyncConnection) -> None:
        if self._row_ready:
            return
        await conn.execute(
            insert(_table)
            .values(key_fingerprint=self._fingerprint, quota_day=self._clock().date())
            .on_conflict_do_nothing(index_elements=[_table.c.key_fingerprint])
        )
        self._row_ready = True

    async def _try_grant(self, priority: Priority) -> _Wait | None:
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            row = (
                await conn.execute(
                    select(
                        _table.c.recent_granted_at,
                        _table.c.quota_day,
                        _table.c.quota_used,
                        _table.c.penalty_ends_at,
                        _table.c.interactive_waiting_until,
                        _table.c.first_attempt_waiting_until,
                        _table.c.retry_waiting_until,
                    )
                    .where(_table.c.key_fingerprint == self._fingerprint)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                self._row_ready = False
                return _Wait(0.0, "row_missing")
            # Read the clock only once the row is locked: time spent waiting for the lock (or a
            # pooled connection) must not make a grant look older than the call it allows.
            now = self._clock()
            today = now.date()
            used = row.quota_used if row.quota_day == today else 0
            if used >= self._limit(priority):
                CTCT_QUOTA_LEFT.set(max(0, self._daily_quota - used))
                resets_at = next_utc_midnight(now)
                log.warning(
                    "ctct.budget.exhausted",
                    priority=priority.value,
                    resets_at=resets_at.isoformat(),
                )
                raise CtctBudgetExhausted(
                    f"today's CTCT budget for {priority.value} calls is spent "
                    f"({used} of {self._daily_quota} used); it resets at {resets_at.isoformat()}",
                    resets_at=resets_at,
                    priority=priority.value,
                )
            standing_back = self._stand_back(row, priority, now)
            if standing_back is not None:
                return standing_back
            if row.penalty_ends_at is not None and row.penalty_ends_at > now:
                seconds = (row.penalty_ends_at - now).total_seconds()
                return _Wait(seconds + self._jitter(seconds), "penalty")
            recent = sorted(t for t in row.recent_granted_at if t > now - self._window)
            if len(recent) >= self._per_window:
                oldest = recent[-self._per_window]
                seconds = (oldest + self._window - now).total_seconds()
                return _Wait(max(seconds, 0.0) + self._jitter(seconds), "window")
            recent = [*recent, now][-self._per_window :]
            await conn.execute(
                update(_table)
                .where(_table.c.key_fingerprint == self._fingerprint)
                .values(
                    recent_granted_at=recent,
                    quota_day=today,
                    quota_used=used + 1,
                    updated_at=now,
                )
            )
        CTCT_QUOTA_LEFT.set(max(0, self._daily_quota - used - 1))
        return None

    def _jitter(self, seconds: float) -> float:
        # Waiters woken at the same instant would all queue on the row lock at once.
        return self._rng.uniform(0.0, min(MAX_WAKE_JITTER_SECONDS, max(seconds, 0.0) * 0.1))
