"""The shared call budget: sliding window, UTC-day quota, interactive reserve, 429 penalty."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.budget import LATE_TOLERANCE_SECONDS, CallBudget
from app.ctct.errors import CtctBudgetExhausted, CtctBudgetTimeout
from app.ctct.priorities import Priority
from app.kit.metrics import CTCT_QUOTA_LEFT
from tests.ctct.conftest import FakeTime, ctct_settings
from tests.kit.engine_events import engine_events


def _max_in_any_window(times: list[datetime], seconds: float = 1.0) -> int:
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        end = start + timedelta(seconds=seconds)
        best = max(best, sum(1 for t in ordered[i:] if t < end))
    return best


def _budget(engine: AsyncEngine, fake_time: FakeTime, **settings: object) -> CallBudget:
    return CallBudget(
        engine, ctct_settings(**settings), clock=fake_time.clock, sleep=fake_time.sleep
    )


def _waking_late(engine: AsyncEngine, fake_time: FakeTime, late: list[float]) -> CallBudget:
    """A 4/s budget on a loaded machine: the next sleeper wakes `late.pop()` s late, while
    `late` holds any."""

    async def oversleep(seconds: float) -> None:
        fake_time.slept.append(seconds)
        fake_time.advance(seconds + (late.pop() if late else 0.0))

    return CallBudget(
        engine, ctct_settings(rate_per_second=4), clock=fake_time.clock, sleep=oversleep
    )


async def test_queueing_callers_are_paced_evenly_and_never_exceed_the_rate_in_any_second(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, rate_per_second=4)
    granted: list[datetime] = []

    async def call() -> None:
        await budget.acquire()
        granted.append(fake_time.now)

    await asyncio.gather(*(call() for _ in range(20)))

    assert _max_in_any_window(granted) == 4
    interval = budget.interval_seconds
    assert interval == pytest.approx(1.015 / 4)  # 98.5% of the rate
    gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(granted)}
    assert gaps == {round(interval, 6)}


async def test_a_queue_loses_none_of_the_rate_to_a_call_woken_late(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    """A busy process woke one caller 100 ms late: the calls after it keep to the schedule
    (even pacing would have pushed every one of them back by the lateness, for good), and only
    the call R after it waits, so the window still counts from when the late one went."""
    sleeps = itertools.count()

    async def one_late_wake(seconds: float) -> None:
        fake_time.slept.append(seconds)
        fake_time.advance(seconds + (0.1 if next(sleeps) == 4 else 0.0))

    budget = CallBudget(
        engine, ctct_settings(rate_per_second=4), clock=fake_time.clock, sleep=one_late_wake
    )
    interval = budget.interval_seconds
    granted: list[datetime] = []

    async def call() -> None:
        await budget.acquire()
        granted.append(fake_time.now)

    await asyncio.gather(*(call() for _ in range(20)))

    offsets = [(t - granted[0]).total_seconds() / interval for t in granted]
    late = 0.1 / interval
    moved = late - LATE_TOLERANCE_SECONDS / interval
    # The 6th call went late; the window pushes every 4th call after it, no other.
    expected = [n + (moved if n > 5 and (n - 5) % 4 == 0 else 0.0) for n in range(20)]
    expected[5] += late
    assert offsets == pytest.approx(expected)
    assert _max_in_any_window(granted, budget.window_seconds - LATE_TOLERANCE_SECONDS) == 4
    assert min(b - a for a, b in itertools.pairwise(granted)) >= timedelta(
        seconds=interval / 2 - LATE_TOLERANCE_SECONDS
    )


async def test_a_slot_beyond_a_callers_deadline_is_refused_and_left_for_the_next_caller(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, rate_per_second=4)
    first = await budget.acquire()
    for _ in range(3):
        await budget.acquire()
    slept = list(fake_time.slept)

    with pytest.raises(CtctBudgetTimeout):
        await budget.acquire(max_wait=0.1)
    assert fake_time.slept == slept

    await budget.acquire()
    assert (fake_time.now - first).total_seconds() == pytest.approx(budget.window_seconds)


async def test_a_lone_caller_that_fell_behind_takes_the_slots_it_missed_within_the_window(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, rate_per_second=4)
    interval = budget.interval_seconds
    granted: list[datetime] = []
    for answer_took in [interval, interval, 3 * interval, 0.0, 0.0, 0.0, 0.0]:
        await budget.acquire()
        granted.append(fake_time.now)
        fake_time.advance(answer_took)  # a sequential reader: the next call waits for this one

    assert _max_in_any_window(granted) == 4
    # After the slow answer the missed slots are taken half an interval apart, as far as the
    # window allows: the last call goes 6.5 intervals after the first; strict pacing: 8.
    assert (granted[-1] - granted[0]).total_seconds() == pytest.approx(6.5 * interval)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(granted)]
    assert min(gaps) == pytest.approx(interval / 2)


async def test_two_budgets_on_one_database_share_the_window(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    first = _budget(engine, fake_time, rate_per_second=4)
    second = _budget(engine, fake_time, rate_per_second=4)
    granted: list[datetime] = []

    for budget in [first, second] * 6:
        await budget.acquire()
        granted.append(fake_time.now)

    assert _max_in_any_window(granted) == 4


async def test_callers_alone_in_their_processes_never_go_in_a_burst(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    """Three processes with one call each to make (a worker's first job, the API's create):
    each alone in its process, they took the window's R slots at once, and a burst reaches
    CTCT with the jitter of its contention (the provisioning bench's one 429)."""
    budgets = [_budget(engine, fake_time, rate_per_second=4) for _ in range(3)]
    granted: list[datetime] = []

    for budget in budgets * 4:
        await budget.acquire()
        granted.append(fake_time.now)

    interval = budgets[0].interval_seconds
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(granted)]
    assert min(gaps) >= interval / 2
    assert _max_in_any_window(granted, budgets[0].window_seconds) == 4


async def test_quota_stops_at_the_daily_limit_and_resumes_the_next_utc_day(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    fake_time.now = datetime(2026, 11, 22, 23, 59, 58, tzinfo=UTC)
    budget = _budget(engine, fake_time, daily_quota=5)
    for _ in range(5):
        await budget.acquire()
    slept = list(fake_time.slept)  # the pacing between the five

    with pytest.raises(CtctBudgetExhausted) as refused:
        await budget.acquire()

    assert refused.value.resets_at == datetime(2026, 11, 23, tzinfo=UTC)
    assert fake_time.slept == slept
    assert await budget.remaining_today() == 0
    assert CTCT_QUOTA_LEFT._value.get() == 0

    fake_time.now = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    await budget.acquire()
    assert await budget.remaining_today() == 4


async def test_background_callers_cannot_spend_the_interactive_reserve(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, daily_quota=10, interactive_reserve=4)
    for _ in range(6):
        await budget.acquire(Priority.BACKGROUND)

    with pytest.raises(CtctBudgetExhausted) as refused:
        await budget.acquire(Priority.BACKGROUND)
    assert refused.value.priority == "background"
    assert await budget.remaining_today(Priority.BACKGROUND) == 0
    assert await budget.remaining_today(Priority.INTERACTIVE) == 4

    for _ in range(4):
        await budget.acquire(Priority.INTERACTIVE)
    with pytest.raises(CtctBudgetExhausted):
        await budget.acquire(Priority.INTERACTIVE)


async def test_a_429_penalty_recorded_by_one_process_delays_the_others(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    penalized = _budget(engine, fake_time)
    other = _budget(engine, fake_time)
    await other.acquire()
    assert fake_time.slept == []

    await penalized.penalize(2.0)
    await other.acquire()

    assert sum(fake_time.slept) >= 2.0
    assert sum(fake_time.slept) < 2.2


async def test_a_caller_that_would_wait_past_its_deadline_gets_an_error_at_once(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time)
    await budget.penalize(5.0)

    with pytest.raises(CtctBudgetTimeout) as refused:
        await budget.acquire(max_wait=1.0)

    assert refused.value.should_retry
    assert refused.value.wait_seconds >= 5.0
    assert fake_time.slept == []


async def test_a_full_window_under_real_time_waits_about_one_window(engine: AsyncEngine) -> None:
    budget = CallBudget(engine, ctct_settings(rate_per_second=2))
    loop = asyncio.get_running_loop()
    started = loop.time()

    for _ in range(3):
        await budget.acquire(max_wait=5.0)

    assert loop.time() - started >= 1.0


async def test_the_table_holds_a_fingerprint_never_the_api_key(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, api_key="very-secret-api-key")
    await budget.acquire()

    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM ctct_budget"))).all()

    assert [row.key_fingerprint for row in rows] == [
        hashlib.sha256(b"very-secret-api-key").hexdigest()
    ]
    assert "very-secret-api-key" not in repr(rows)


async def test_a_caller_queued_behind_more_calls_than_its_deadline_allows_is_refused_at_once(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    """200 creates arriving at once at one API process: those that cannot be sent within their
    wait hand over to the workers at once, instead of holding their request while they queue
    (bench/provision.py lost a second of CTCT's rate to that handover)."""
    budget = _budget(engine, fake_time, rate_per_second=4)

    async def call() -> datetime | None:
        try:
            return await budget.acquire(max_wait=1.0)
        except CtctBudgetTimeout:
            return None

    with engine_events(engine, "commit") as commits:
        granted = await asyncio.gather(*(call() for _ in range(10)))

    # The 5th caller has 4 ahead of it (4 intervals > 1 s): it and those after it are refused
    # without asking the database. The 4th, 3 intervals ahead, asks (and is granted unless the
    # machine is so slow that its real wait for the turn ate into its deadline).
    assert [slot is not None for slot in granted[:3]] == [True] * 3
    assert [slot is not None for slot in granted[4:]] == [False] * 6
    assert len(commits) == 4


async def test_a_caller_woken_late_moves_its_slot_so_the_window_counts_from_when_it_went(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    late: list[float] = []
    budget = _waking_late(engine, fake_time, late)
    for _ in range(4):
        await budget.acquire()
    late.append(0.3)  # more than an interval
    await budget.acquire()  # waits for the window, is woken 300 ms late, and sends then
    went = fake_time.now
    for _ in range(4):
        await budget.acquire()

    # Five consecutive calls from the late one span the window from (just before) when it went.
    assert (fake_time.now - went).total_seconds() == pytest.approx(
        budget.window_seconds - LATE_TOLERANCE_SECONDS
    )


async def test_a_caller_woken_a_little_late_sends_at_once_and_its_slot_moves_once_it_went(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    """A transaction before sending would make a call 10 ms late later still."""
    late: list[float] = []
    budget = _waking_late(engine, fake_time, late)
    first = await budget.acquire()
    for _ in range(3):
        await budget.acquire()
    late.append(0.01)

    with engine_events(engine, "commit") as commits:
        slot = await budget.acquire()  # waits for the window, woken 10 ms late
        woken = len(commits)

    assert slot == first + timedelta(seconds=budget.window_seconds)  # as planned, not moved
    assert woken == 1  # the grant's transaction, none after waking
    moving = budget.note_sent(slot)
    assert moving is not None
    assert await moving == fake_time.now - timedelta(seconds=LATE_TOLERANCE_SECONDS)


async def test_a_slot_granted_now_but_sent_late_is_moved_too(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, rate_per_second=4)
    delays = [0.3]

    def busy_loop(*_args: object) -> None:  # the first grant's caller resumes 300 ms late
        if delays:
            fake_time.advance(delays.pop())

    event.listen(engine.sync_engine, "commit", busy_loop)
    try:
        await budget.acquire()
    finally:
        event.remove(engine.sync_engine, "commit", busy_loop)
    went = fake_time.now
    for _ in range(4):
        await budget.acquire()

    assert (fake_time.now - went).total_seconds() == pytest.approx(
        budget.window_seconds - LATE_TOLERANCE_SECONDS
    )


@pytest.mark.parametrize(
    "late",
    [
        pytest.param(0.005, id="a few ms: costs only its lateness beyond the tolerance"),
        pytest.param(0.2, id="a busy process took this long from the grant to the socket"),
    ],
)
async def test_a_call_that_reaches_the_wire_late_moves_its_slot_to_the_tolerance_before_then(
    engine: AsyncEngine, fake_time: FakeTime, late: float
) -> None:
    budget = _budget(engine, fake_time, rate_per_second=4)
    slot = await budget.acquire()
    assert budget.note_sent(slot) is None  # on time: nothing to record

    fake_time.advance(late)
    moving = budget.note_sent(slot)
    assert moving is not None
    on_record = await moving
    for _ in range(4):
        await budget.acquire()

    assert on_record == slot + timedelta(seconds=late - LATE_TOLERANCE_SECONDS)
    assert (fake_time.now - on_record).total_seconds() == pytest.approx(budget.window_seconds)
