"""The upstream call budget shared by every process and replica through Postgres (DESIGN §5).

Per CTCT API key: calls paced evenly (GCRA, no burst; the slot arithmetic is
`app.ctct.pacing`), at most `daily_quota` a UTC day shared by priority, and a penalty after a
429 that holds back every process. Who may spend what, and who goes first, is
`app.ctct.priorities`: a higher priority that waits announces it in the row and lower ones stand
back; within a process each priority queues for its own turn. Each attempt is one short
row-locked transaction; a caller that must wait commits first, sleeps outside it, and gets
`CtctBudgetTimeout` instead of waiting past its `max_wait`. docs/ctct.md ("The call budget")
explains each rule and why.
"""

from __future__ import annotations

import asyncio
import math
import random
import time as time_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.ctct import pacing, priorities
from app.ctct.budget_terms import BudgetSnapshot, key_fingerprint, next_utc_midnight
from app.ctct.errors import CtctBudgetExhausted, CtctBudgetTimeout
from app.ctct.models import CtctBudget
from app.ctct.priorities import Priority
from app.ctct.quota_alert import QuotaAlert, QuotaLowHook
from app.db import utcnow
from app.kit.metrics import CTCT_QUOTA_LEFT, CTCT_RATE_LIMIT_WAITS
from app.settings import CtctSettings

log = structlog.get_logger(__name__)

# A call sent later than this after its slot moves the slot to this long before it went, so
# every call on record reaches the wire within this of its slot, moved or not.
LATE_TOLERANCE_SECONDS = 0.003
# Woken this late, a caller records its slot moved before sending; a smaller lateness is moved
# in the background once the request is on the wire (`note_sent`).
MOVE_BEFORE_SENDING_SECONDS = 0.02
DEFAULT_MAX_WAIT_SECONDS = 30.0
MAX_WAKE_JITTER_SECONDS = 0.005

_table: Table = CtctBudget.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class _Wait:
    seconds: float
    reason: str
    # A slot is ours: sleep until it and send, without asking again (unless we wake too late).
    slot: datetime | None = None


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
        pacing_slack: float | None = None,
        late_tolerance: float = LATE_TOLERANCE_SECONDS,
        on_quota_low: QuotaLowHook | None = None,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._fingerprint = key_fingerprint(settings.api_key.get_secret_value())
        self._per_window = max(1, math.floor(settings.rate_per_second))
        slack = settings.pacing_slack if pacing_slack is None else pacing_slack
        self._interval = timedelta(seconds=(1 + slack) / settings.rate_per_second)
        # Never more than R slots in any R intervals, whatever the row holds.
        self._window = self._interval * self._per_window
        self._late_tolerance = late_tolerance
        self._daily_quota = settings.daily_quota
        self._limits = priorities.daily_limits(settings)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._default_max_wait = default_max_wait
        self._row_ready = False
        # One poller per priority per process, so a waiting lower priority never holds up a
        # higher one.
        self._turns = {priority: asyncio.Lock() for priority in Priority}
        self._quota_alert = QuotaAlert(
            daily_quota=settings.daily_quota,
            threshold=settings.quota_low_threshold,
            notify=on_quota_low,
        )
        # Callers of this process waiting for their priority's turn.
        self._queued_by_priority = dict.fromkeys(Priority, 0)
        self._moves: set[asyncio.Task[datetime | None]] = set()

    async def aclose(self) -> None:
        """Close the budget's connections if it has its own; wait for slot moves in flight."""
        if self._moves:
            await asyncio.gather(*self._moves, return_exceptions=True)
        if self._owns_engine:
            await self._engine.dispose()

    @property
    def interval_seconds(self) -> float:
        """The spacing between two grants (from any process)."""
        return self._interval.total_seconds()

    @property
    def window_seconds(self) -> float:
        """The sliding window in which at most floor(rate) calls are granted."""
        return self._window.total_seconds()

    async def acquire(
        self, priority: Priority = Priority.INTERACTIVE, *, max_wait: float | None = None
    ) -> datetime:
        """Wait for a grant to make one CTCT call; raises instead of waiting past `max_wait`.

        Returns the slot granted: pass it to `note_sent` once the call is on the wire."""
        limit = self._default_max_wait if max_wait is None else max_wait
        started = time_module.monotonic()
        turn = self._turns[priority]
        self._refuse_a_hopeless_queue(priority, turn, limit)
        self._queued_by_priority[priority] += 1
        try:
            await self._take_turn(turn, limit)
        finally:
            self._queued_by_priority[priority] -= 1
        try:
            return await self._acquire_in_turn(priority, limit, time_module.monotonic() - started)
        finally:
            turn.release()

    def calls_within(self, seconds: float) -> int:
        """How many calls of one priority this process may have under way, each taking one
        interval at least, and the last still go within `seconds`."""
        return math.floor(seconds / self.interval_seconds) + 1

    def _refuse_a_hopeless_queue(
        self, priority: Priority, turn: asyncio.Lock, limit: float
    ) -> None:
        # A caller that could only time out in the queue is refused now, so its work can go
        # elsewhere (a create to the workers) instead of being held while it waits.
        ahead = self._queued_by_priority[priority] + (1 if turn.locked() else 0)
        if ahead >= self.calls_within(limit):
            at_least = ahead * self.interval_seconds
            log.info(
                "ctct.budget.wait_refused",
                reason="queue",
                wait_seconds=round(at_least, 3),
                priority=priority.value,
            )
            raise CtctBudgetTimeout(
                f"{ahead} calls of this process wait for the CTCT budget ahead of this one: "
                f"at least {at_least:.2f}s, beyond this call's {limit:.2f}s deadline",
                wait_seconds=at_least,
            )

    async def _take_turn(self, turn: asyncio.Lock, limit: float) -> None:
        # One caller per process and priority polls the shared row at a time; the rest queue
        # here in order. Without this, hundreds of waiters hammer the row lock and the event
        # loop lags, and a call granted in time reaches CTCT late enough to break CTCT's own
        # one-second window.
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

    async def _acquire_in_turn(self, priority: Priority, limit: float, waited: float) -> datetime:
        while True:
            wait = await self._try_grant(priority, limit - waited)
            if wait.slot is not None:
                # Holding this process's turn until the slot: one reservation per process ahead.
                if wait.seconds > 0:
                    await self._sleep(wait.seconds)
                # Woken late (a busy event loop), also for a slot granted "now". A transaction
                # before sending makes the call later still: only for a lateness the window
                # could not absorb if the transport never reported the send (`note_sent`).
                if (self._clock() - wait.slot).total_seconds() > MOVE_BEFORE_SENDING_SECONDS:
                    return await self._move_slot(wait.slot)
                return wait.slot
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
            await self._sleep(wait.seconds)
            waited += wait.seconds

    def note_sent(self, slot: datetime) -> asyncio.Task[datetime | None] | None:
        """The call granted `slot` is on the wire now: if late (a busy process can take long
        from the grant to the socket), move the slot in the background so the slots reserved
        after it count from when it went; the call's answer need not wait for that."""
        went = self._clock()
        if (went - slot).total_seconds() <= self._late_tolerance:
            return None
        task = asyncio.create_task(self._move_quietly(slot, went), name="ctct-budget-move")
        self._moves.add(task)
        task.add_done_callback(self._moves.discard)
        return task

    async def _move_quietly(self, slot: datetime, went: datetime) -> datetime | None:
        try:
            return await self._move_slot(slot, went)
        except (SQLAlchemyError, OSError) as exc:  # the window guard still holds the planned slot
            log.warning("ctct.budget.move_failed", error_type=type(exc).__name__)
            return None

    async def _move_slot(self, slot: datetime, went: datetime | None = None) -> datetime:
        """Record that the call granted `slot` really went at `went` (or goes now): its slot
        on record becomes the late tolerance before then, the same bound as an unmoved call's
        (moving it to `went` itself would lose that much of the rate at each move)."""
        CTCT_RATE_LIMIT_WAITS.labels(reason="late_slot").inc()
        async with self._engine.begin() as conn:
            recent = await conn.scalar(
                select(_table.c.recent_granted_at)
                .where(_table.c.key_fingerprint == self._fingerprint)
                .with_for_update()
            )
            now = went or self._clock()
            on_record = max(slot, now - timedelta(seconds=self._late_tolerance))
            await self._update_row(
                conn,
                recent_granted_at=pacing.moved(recent or [], slot, on_record, self._per_window),
                updated_at=now,
            )
        log.info("ctct.budget.slot_moved", late_ms=round((now - slot).total_seconds() * 1000, 1))
        return on_record

    async def penalize(self, seconds: float) -> None:
        """Hold back every process's calls for `seconds` (after CTCT answered 429)."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            await self._update_row(
                conn, penalty_ends_at=_later("penalty_ends_at", until), updated_at=self._clock()
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
            await self._update_row(
                conn,
                quota_day=now.date(),
                quota_used=max(used or 0, self._daily_quota),
                updated_at=now,
            )
            if self._quota_alert.due(now.date(), self._daily_quota):
                await self._quota_alert.record(
                    conn,
                    self._fingerprint,
                    day=now.date(),
                    used=max(used or 0, self._daily_quota),
                    resets_at=next_utc_midnight(now),
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

    async def _ensure_row(self, conn: AsyncConnection) -> None:
        if self._row_ready:
            return
        await conn.execute(
            insert(_table)
            .values(key_fingerprint=self._fingerprint, quota_day=self._clock().date())
            .on_conflict_do_nothing(index_elements=[_table.c.key_fingerprint])
        )
        self._row_ready = True

    async def _try_grant(self, priority: Priority, time_left: float) -> _Wait:
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            row = (
                await conn.execute(
                    select(
                        _table.c.recent_granted_at,
                        _table.c.quota_day,
                        _table.c.quota_used,
                        _table.c.penalty_ends_at,
                        _table.c.paced_until,
                        *(_table.c[column] for column in priorities.WAITING_COLUMNS.values()),
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
            standing_back = priorities.stand_back_seconds(row, priority, now)
            if standing_back is not None:
                return _Wait(standing_back + self._jitter(standing_back), "priority")
            if row.penalty_ends_at is not None and row.penalty_ends_at > now:
                seconds = (row.penalty_ends_at - now).total_seconds()
                return _Wait(seconds + self._jitter(seconds), "penalty")
            recent = sorted(t for t in row.recent_granted_at if t > now - self._window)
            slot = pacing.next_slot(
                now,
                recent,
                paced_until=row.paced_until,
                interval=self._interval,
                per_window=self._per_window,
                even=any(self._queued_by_priority.values()),
            )
            seconds = (slot - now).total_seconds()
            if seconds > time_left:
                return _Wait(seconds, "window")  # not reserved: the caller refuses at once
            announce = self._announcement(priority, slot) if seconds > 0 else {}
            if seconds > priorities.RESERVE_AHEAD_SECONDS and priorities.may_be_overtaken(priority):
                # A higher priority may yet ask for this slot: wait for it unreserved, ask again.
                if announce:
                    await self._update_row(conn, **announce)
                ahead = seconds - priorities.RESERVE_AHEAD_SECONDS
                return _Wait(ahead + self._jitter(ahead), "pacing")
            recent = [*recent, slot][-self._per_window :]
            await self._update_row(
                conn,
                recent_granted_at=recent,
                paced_until=pacing.paced_after(now, slot, row.paced_until, interval=self._interval),
                quota_day=today,
                quota_used=used + 1,
                updated_at=now,
                **self._withdrawal(priority, slot),
            )
            if self._quota_alert.due(today, used + 1):
                await self._quota_alert.record(
                    conn,
                    self._fingerprint,
                    day=today,
                    used=used + 1,
                    resets_at=next_utc_midnight(now),
                )
        CTCT_QUOTA_LEFT.set(max(0, self._daily_quota - used - 1))
        if seconds > 0:
            CTCT_RATE_LIMIT_WAITS.labels(reason="pacing").inc()
        # Sleep until the slot by the clock as it is after the commit, not as it was before.
        return _Wait(max(0.0, (slot - self._clock()).total_seconds()), "pacing", slot=slot)

    @staticmethod
    def _announcement(priority: Priority, slot: datetime) -> dict[str, Any]:
        """The row's values by which a caller waiting for `slot` holds lower priorities back."""
        column = priorities.WAITING_COLUMNS.get(priority)
        return {} if column is None else {column: _later(column, priorities.waiting_until(slot))}

    @staticmethod
    def _withdrawal(priority: Priority, slot: datetime) -> dict[str, Any]:
        """The row's values once a caller has reserved `slot`: a reserved slot is safe from
        lower priorities, so its announcement ends (unless a caller of the same priority
        announced a later slot); otherwise steady traffic would keep lower ones back for good."""
        column = priorities.WAITING_COLUMNS.get(priority)
        if column is None:
            return {}
        held = _table.c[column]
        return {column: case((held <= priorities.waiting_until(slot), None), else_=held)}

    async def _update_row(self, conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(
            update(_table).where(_table.c.key_fingerprint == self._fingerprint).values(values)
        )

    def _jitter(self, seconds: float) -> float:
        # Waiters woken at the same instant would all queue on the row lock at once.
        return self._rng.uniform(0.0, min(MAX_WAKE_JITTER_SECONDS, max(seconds, 0.0) * 0.1))


def _later(column: str, value: datetime) -> Any:
    """The later of the row's `column` (if set) and `value`."""
    return func.greatest(func.coalesce(_table.c[column], value), value)
