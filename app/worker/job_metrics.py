"""The worker's job metrics: each job's outcome and run time, and the queues as Postgres has them.

`measure` is a procrastinate worker middleware: it wraps every job this worker runs.
`refresh` reads the job queues (procrastinate's tables) when the worker's /metrics is scraped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import procrastinate
import structlog
from procrastinate import JobContext
from procrastinate.exceptions import JobAborted
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.metrics import (
    JOBS_IN_PROGRESS,
    JOBS_OLDEST_WAIT,
    JOBS_WAITING,
    WORKER_JOB_SECONDS,
    WORKER_JOBS,
    WORKER_JOBS_RUNNING,
)

log = structlog.get_logger(__name__)

READ_TIMEOUT_SECONDS = 1.0


async def measure(call_next: Callable[[], Awaitable[Any]], context: JobContext, worker: Any) -> Any:
    """Count the job by task and outcome and time it (a procrastinate worker middleware)."""
    task = context.job.task_name
    outcome = "failed"
    started = time.perf_counter()
    WORKER_JOBS_RUNNING.labels(task=task).inc()
    try:
        result = await call_next()
    except JobAborted:
        outcome = "aborted"
        raise
    else:
        outcome = "succeeded"
        return result
    finally:
        WORKER_JOBS_RUNNING.labels(task=task).dec()
        WORKER_JOBS.labels(task=task, outcome=outcome).inc()
        WORKER_JOB_SECONDS.labels(task=task).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    in_progress: int
    oldest_wait_seconds: float


# A job waits from when it became due: its schedule, or else when it was deferred.
_QUEUE_STATS = text(
    """
    SELECT j.queue_name,
           count(*) FILTER (WHERE j.status = 'todo'),
           count(*) FILTER (WHERE j.status = 'doing'),
           coalesce(extract(epoch FROM now() - min(coalesce(j.scheduled_at, e.at))
                    FILTER (WHERE j.status = 'todo')), 0)
    FROM procrastinate_jobs j
    LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
    WHERE j.status = 'doing'
       OR (j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()))
    GROUP BY j.queue_name
    """
)


async def queue_stats(session: AsyncSession) -> list[QueueStats]:
    """Due and running jobs per queue, and how long the oldest due job has waited."""
    rows = await session.execute(_QUEUE_STATS)
    return [
        QueueStats(str(queue), int(waiting), int(doing), max(0.0, float(oldest)))
        for queue, waiting, doing, oldest in rows
    ]


def record(stats: list[QueueStats], known_queues: set[str]) -> None:
    """Set the queue gauges; a known queue with no jobs reads 0 rather than disappearing."""
    found = {entry.queue: entry for entry in stats}
    for queue in known_queues | found.keys():
        entry = found.get(queue, QueueStats(queue, 0, 0, 0.0))
        JOBS_WAITING.labels(queue=queue).set(entry.waiting)
        JOBS_IN_PROGRESS.labels(queue=queue).set(entry.in_progress)
        JOBS_OLDEST_WAIT.labels(queue=queue).set(entry.oldest_wait_seconds)


async def refresh(
    sessionmaker: async_sessionmaker[AsyncSession], job_app: procrastinate.App
) -> None:
    """Read the queues and set the gauges; a slow or failing database leaves the last values."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS), sessionmaker() as session:
            stats = await queue_stats(session)
    except (TimeoutError, SQLAlchemyError) as exc:
        log.warning("worker.metrics.unavailable", error_type=type(exc).__name__)
        return
    record(stats, {task.queue for task in job_app.tasks.values()})
