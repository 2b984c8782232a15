"""The budget serves by priority (issue 11): access probes and first attempts before retries and
reconciliation, the audit last; retries never spend the interactive reserve."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.budget import CallBudget, Priority
from app.ctct.errors import CtctBudgetExhausted
from tests.ctct.conftest import FakeTime, ctct_settings


def _budget(engine: AsyncEngine, fake_time: FakeTime, **settings: object) -> CallBudget:
    return CallBudget(
        engine, ctct_settings(**settings), clock=fake_time.clock, sleep=fake_time.sleep
    )


async def test_each_priority_spends_only_its_share_of_the_day(
    engine: AsyncEngine, fake_time: FakeTime
) -> None:
    budget = _budget(engine, fake_time, daily_quota=10, interactive_reserve=3, retry_reserve=2)
    for _ in range(5):
        await budget.acquire(Priority.BACKGROUND)
    with pytest.raises(CtctBudgetExhausted) as audit_refused:
        await budget.acquire(Priority.BACKGROUND)
    assert audit_refused.value.priority == "background"
    assert await budget.remaining_today(Priority.RETRY) == 2

    for _ in range(2):
        await budget.acquire(Priority.RETRY)
    with pytest.raises(CtctBudgetExhausted) as retry_refused:
        await budget.acquire(Priority.RETRY)
    assert retry_refused.value.priority == "retry"

    # The reserve that keeps access probes answering is still whole; first attempts share it.
    assert await budget.remaining_today(Priority.INTERACTIVE) == 3
    assert await budget.remaining_today(Priority.FIRST_ATTEMPT) == 3
    for _ in range(3):
        await budget.acquire(Priority.INTERACTIVE)
    with pytest.raises(CtctBudgetExhausted):
        await budget.acquire(Priority.INTERACTIVE)


async def _race(
    first: CallBudget, first_priority: Priority, second: CallBudget, second_priority: Priority
) -> list[Priority]:
    """`first` asks, then `second` asks while both wait for the same slot; the grant order."""
    order: list[Priority] = []

    async def ask(budget: CallBudget, priority: Priority) -> None:
        await budget.acquire(priority, max_wait=10.0)
        order.append(priority)

    waiting_first = asyncio.create_task(ask(first, first_priority))
    await asyncio.sleep(0.1)
    await ask(second, second_priority)
    await waiting_first
    return order


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        (Priority.BACKGROUND, Priority.INTERACTIVE),
        (Priority.FIRST_ATTEMPT, Priority.INTERACTIVE),
        (Priority.RETRY, Priority.FIRST_ATTEMPT),
        (Priority.BACKGROUND, Priority.RETRY),
    ],
)
async def test_a_higher_priority_that_asks_later_is_served_first_across_processes(
    engine: AsyncEngine, lower: Priority, higher: Priority
) -> None:
    # Two budgets on one database stand for two processes; one call per 1.1 s window.
    one = CallBudget(engine, ctct_settings(rate_per_second=1))
    other = CallBudget(engine, ctct_settings(rate_per_second=1))
    for _ in range(3):
        await one.acquire(Priority.INTERACTIVE, max_wait=10.0)  # the window is full now

        order = await _race(one, lower, other, higher)

        assert order == [higher, lower]


async def test_within_a_process_a_waiting_audit_call_does_not_hold_up_a_probe(
    engine: AsyncEngine,
) -> None:
    budget = CallBudget(engine, ctct_settings(rate_per_second=1))
    for _ in range(2):
        await budget.acquire(Priority.INTERACTIVE, max_wait=10.0)

        order = await _race(budget, Priority.BACKGROUND, budget, Priority.INTERACTIVE)

        assert order == [Priority.INTERACTIVE, Priority.BACKGROUND]


@pytest.mark.parametrize("higher", [Priority.INTERACTIVE, Priority.FIRST_ATTEMPT])
async def test_a_higher_priority_served_holds_nobody_back_while_slots_are_free(
    engine: AsyncEngine, fake_time: FakeTime, higher: Priority
) -> None:
    # Seen in bench/soak.py: creates and probes arriving several times a second kept the audit
    # standing back for minutes at 50 calls/s, far below the limit, and scheduled periods went
    # by without an audit. A higher priority holds lower ones back only while it still waits.
    product = _budget(fake_time=fake_time, engine=engine, rate_per_second=10)
    audit = _budget(fake_time=fake_time, engine=engine, rate_per_second=10)
    for _ in range(10):  # a burst fills the window (10 calls within 10 intervals)
        await product.acquire(higher)
    started = fake_time.now
    waited_for = await product.acquire(higher)  # waited for the next slot, and has it now
    assert waited_for > started
    assert fake_time.now >= waited_for

    fake_time.advance(0.2)  # the next slots are free; nobody waits for them
    asked_at = fake_time.now
    granted = await audit.acquire(Priority.BACKGROUND)

    assert granted == asked_at
