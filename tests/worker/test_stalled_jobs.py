"""Jobs left `doing` by a worker that died (SIGKILL) are queued again, or dropped when the same
work already waits under their queueing lock or comes with their task's next period; the
housekeeping job itself never fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import procrastinate
import pytest
from procrastinate.jobs import Status
from psycopg import sql

from app.db import libpq_url
from app.kit.jobs import job_app
from app.worker.maintenance import retry_stalled_jobs

TASK = "tests.stalled"
LOCK = "tests-stalled-lock"


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[procrastinate.JobManager]:
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url))
    with job_app.replace_connector(connector):
        async with job_app.open_async():
            yield job_app.job_manager


async def _stalled_job(
    jobs: procrastinate.JobManager, database_url: str, task: str = TASK, **arguments: object
) -> int:
    """A job taken by a worker whose last heartbeat is long gone."""
    await job_app.configure_task(name=task, queueing_lock=LOCK).defer_async(**arguments)
    worker_id = await jobs.register_worker()
    job = await jobs.fetch_job(None, worker_id)
    assert job is not None
    assert job.id is not None
    await jobs.connector.execute_query_async(
        sql.SQL(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '5 minutes' "
            "WHERE id = {}"
        )
        .format(sql.Literal(worker_id))
        .as_string(None)
    )
    return job.id


async def _status(jobs: procrastinate.JobManager, job_id: int) -> Status:
    status: Status = await jobs.get_job_status_async(job_id)
    return status


async def test_a_stalled_job_is_queued_again(
    jobs: procrastinate.JobManager, database_url: str
) -> None:
    stalled = await _stalled_job(jobs, database_url)

    await retry_stalled_jobs(timestamp=0)

    assert await _status(jobs, stalled) is Status.TODO


async def test_a_stalled_job_whose_work_already_waits_is_dropped_without_failing(
    jobs: procrastinate.JobManager, database_url: str
) -> None:
    stalled = await _stalled_job(jobs, database_url)
    waiting = await job_app.configure_task(name=TASK, queueing_lock=LOCK).defer_async()

    await retry_stalled_jobs(timestamp=0)

    assert await _status(jobs, stalled) is Status.ABORTED
    assert await _status(jobs, waiting) is Status.TODO


async def test_a_stalled_job_of_a_periodic_task_is_dropped_for_its_next_period(
    jobs: procrastinate.JobManager, database_url: str
) -> None:
    # Its period is past; the next period's job does the work. Queued again, it would hold
    # the task's queueing lock just when that next period is deferred, and that period be lost.
    stalled = await _stalled_job(jobs, database_url, retry_stalled_jobs.name, timestamp=0)

    await retry_stalled_jobs(timestamp=0)

    assert await _status(jobs, stalled) is Status.ABORTED
