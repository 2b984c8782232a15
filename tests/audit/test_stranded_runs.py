"""A queued audit run never blocks later audits (defect 6 of issue 11): a run whose job failed
before claiming it, or that nobody claimed for too long, expires; scheduled and requested runs
start again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import repository, runner
from app.audit import service as audit_service
from app.audit.models import AuditState, AuditTrigger
from app.db import utcnow


async def _queue(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        run = await audit_service.request_run(session, requested_by="ops")
    return run.id


async def _state(sessionmaker: async_sessionmaker[AsyncSession], run_id: int) -> str:
    async with sessionmaker() as session:
        run = await repository.get(session, run_id)
    assert run is not None
    return run.state


async def test_a_queued_run_whose_job_failed_before_the_claim_expires(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stuck = await _queue(sessionmaker)
    async with sessionmaker() as session, session.begin():
        # The job raised before `claim_queued` (a worker without resources, a bug).
        await session.execute(text("UPDATE procrastinate_jobs SET status = 'failed'"))

    asked = await _queue(sessionmaker)

    assert asked != stuck
    assert await _state(sessionmaker, stuck) == AuditState.FAILED.value
    async with sessionmaker() as session:
        run = await repository.get(session, stuck)
    assert run is not None
    assert run.error is not None
    assert "job" in run.error


async def test_a_queued_run_nobody_claimed_in_time_expires_and_the_schedule_runs_again(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stuck = await _queue(sessionmaker)
    async with sessionmaker() as session, session.begin():
        run = await repository.get(session, stuck, for_update=True)
        assert run is not None
        run.created_at = utcnow() - timedelta(hours=1)

    scheduled = await runner.open_run(
        sessionmaker, trigger=AuditTrigger.SCHEDULE, scheduled_for=utcnow()
    )

    assert scheduled is not None
    assert await _state(sessionmaker, stuck) == AuditState.FAILED.value


@pytest.mark.parametrize("job_status", ["todo", "doing"])
async def test_a_queued_run_with_a_live_job_keeps_its_slot(
    sessionmaker: async_sessionmaker[AsyncSession], job_status: str
) -> None:
    waiting = await _queue(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE procrastinate_jobs SET status = CAST(:s AS procrastinate_job_status)"),
            {"s": job_status},
        )
        expired = await audit_service.expire_stranded(session)

    assert expired == 0
    assert await _state(sessionmaker, waiting) == AuditState.QUEUED.value
