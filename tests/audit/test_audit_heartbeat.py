"""A run beats while it lives, whatever it waits on; a run whose process died frees the slot
within HEARTBEAT_TIMEOUT, so the next period (or a person) gets a run of its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import runner
from app.audit import service as audit_service
from app.audit.models import AuditState, AuditTrigger
from app.sandbox.state import SandboxState
from tests.audit.conftest import Auditor
from tests.kit.polling import poll_until

PERIOD = datetime(2026, 12, 1, 3, 17, tzinfo=UTC)


async def test_a_run_whose_process_died_frees_the_next_period_within_a_minute(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    dead = await runner.open_run(sessionmaker, trigger=AuditTrigger.SCHEDULE, scheduled_for=PERIOD)
    assert dead is not None
    silent_for = audit_service.HEARTBEAT_TIMEOUT + timedelta(seconds=1)
    assert silent_for <= timedelta(minutes=1)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE audit_run SET heartbeat_at = now() - :ago WHERE id = :id"),
            {"ago": silent_for, "id": dead.id},
        )

    following = await runner.open_run(
        sessionmaker, trigger=AuditTrigger.SCHEDULE, scheduled_for=PERIOD + timedelta(minutes=1)
    )

    assert following is not None
    async with sessionmaker() as session:
        state = await session.scalar(
            text("SELECT state FROM audit_run WHERE id = :id"), {"id": dead.id}
        )
    assert state == AuditState.FAILED.value


async def test_a_live_run_beats_while_it_waits_on_ctct(
    auditor: Auditor,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_service, "HEARTBEAT_INTERVAL", timedelta(seconds=0.1))
    sandbox.seed_accounts(3, partner="ours")
    sandbox.add_fault("latency", "list", count=1, delay_seconds=1.5)
    task = asyncio.create_task(auditor.run())

    async def first_beat() -> datetime | None:
        async with sessionmaker() as session:
            return await session.scalar(text("SELECT max(heartbeat_at) FROM audit_run"))

    started = await poll_until(first_beat, lambda beat: beat is not None, timeout=5)
    assert started is not None
    later = await poll_until(first_beat, lambda beat: beat is not None and beat > started)
    run = await task

    assert later is not None
    assert run.finished_at is not None
    assert later < run.finished_at
    assert run.state == AuditState.COMPLETED.value
    assert run.pages_read == 1
