"""`defer_in_transaction`: a job is written in the caller's transaction, once per queueing lock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.kit.jobs import defer_in_transaction

TASK = "test.noop"
LOCK = "test-lock-1"


async def _jobs(session: AsyncSession) -> list[tuple[str, object]]:
    rows = await session.execute(
        text("SELECT queueing_lock, scheduled_at FROM procrastinate_jobs ORDER BY id")
    )
    return [(row[0], row[1]) for row in rows]


async def test_a_waiting_job_is_brought_forward_and_the_transaction_carries_on(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    later = utcnow() + timedelta(hours=1)
    sooner = utcnow() + timedelta(minutes=1)
    async with sessionmaker() as session, session.begin():
        first = await defer_in_transaction(
            session, task=TASK, queue="test", queueing_lock=LOCK, schedule_at=later, n=1
        )
        again = await defer_in_transaction(
            session, task=TASK, queue="test", queueing_lock=LOCK, schedule_at=sooner, n=2
        )
        not_later = await defer_in_transaction(
            session, task=TASK, queue="test", queueing_lock=LOCK, schedule_at=later, n=3
        )
        # The unique violation of the second deferral did not abort the caller's transaction.
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1

    async with sessionmaker() as session:
        jobs = await _jobs(session)
    assert (first, again, not_later) == (True, False, False)
    assert jobs == [(LOCK, sooner)]


async def test_a_rolled_back_transaction_takes_its_job_with_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await defer_in_transaction(session, task=TASK, queue="test", queueing_lock=LOCK)
        await session.rollback()

    async with sessionmaker() as session:
        assert await _jobs(session) == []
