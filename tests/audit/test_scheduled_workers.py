"""Three real worker processes over several periods produce exactly one audit run per period.

procrastinate's cron takes a sixth, seconds field (croniter), so `AUDIT_SCHEDULE=* * * * * */2`
makes a period every 2 s. Each worker's periodic deferrer defers every period it sees; the
database keeps one deferral per (task, timestamp), the task's queueing lock keeps one waiting job,
and `audit_run.scheduled_for` is unique, so however the three race, a period gets one run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from tests.conftest import new_sandbox
from tests.kit.polling import poll_until
from tests.provisioning.processes import process_env, processes

PERIOD_SECONDS = 2
SCHEDULE = f"* * * * * */{PERIOD_SECONDS}"
WANTED_PERIODS = 3
LIST_PATH = "/v3/partner/accounts"


@pytest.fixture
def sandbox_state() -> SandboxState:
    state = new_sandbox(rate_per_second=100_000)
    state.seed_accounts(5, partner="ours")
    return state


@pytest.fixture
def sandbox_url(sandbox_state: SandboxState) -> Iterator[str]:
    with running_sandbox(sandbox_state) as url:
        yield url


async def scheduled_runs(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> list[tuple[datetime, str, str, int]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT scheduled_for, state, trigger, list_calls FROM audit_run "
                "WHERE scheduled_for IS NOT NULL ORDER BY scheduled_for, id"
            )
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]


async def test_three_workers_over_several_periods_produce_one_audit_run_per_period(
    database_url: str,
    sandbox_url: str,
    sandbox_state: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    env = process_env(database_url, sandbox_url, AUDIT_SCHEDULE=SCHEDULE)
    with processes(env, tmp_path) as group:
        workers = [group.worker() for _ in range(3)]

        def enough(runs: list[tuple[datetime, str, str, int]]) -> bool:
            completed = {run[0] for run in runs if run[1] == "completed"}
            return len(completed) >= WANTED_PERIODS

        try:
            await poll_until(
                lambda: scheduled_runs(sessionmaker), enough, timeout=120.0, interval=0.2
            )
        except AssertionError:
            raise AssertionError(f"too few periods ran; worker logs:\n{group.logs()}") from None
        assert all(worker.popen.poll() is None for worker in workers), group.logs()
        group.stop_all()

    runs = await scheduled_runs(sessionmaker)
    periods = [run[0] for run in runs]
    assert len(periods) == len(set(periods)), runs
    assert len(periods) >= WANTED_PERIODS
    assert {run[2] for run in runs} == {"schedule"}
    # Each run is for a tick of the cron: whole seconds on the 2 s grid.
    assert all(period.astimezone(UTC).timestamp() % PERIOD_SECONDS == 0 for period in periods)
    # Nobody listed our accounts without a run to show for it.
    assert sum(run[3] for run in runs) == len(sandbox_state.calls.calls(LIST_PATH, "GET"))
    logs = group.logs()
    assert "IntegrityError" not in logs
    # procrastinate's own account (its log at DEBUG): each period's job was deferred by one
    # worker, and the others found it already deferred, so the three really raced.
    for period in periods:
        stamp = int(period.timestamp())
        deferred = rf"audit\.scheduled\[\d+\]\(timestamp={stamp}\) deferred for timestamp"
        assert len(re.findall(deferred, logs)) == 1, stamp
    raced = re.findall(
        r"audit\.scheduled\[None\]\(timestamp=\d+\) skipped .*already deferred", logs
    )
    assert raced, "no worker found a period already deferred by another"
