"""Worker housekeeping shared by every domain: jobs whose worker died are run again."""

from __future__ import annotations

import structlog
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status
from procrastinate.manager import QUEUEING_LOCK_CONSTRAINT

from app.kit.jobs import job_app

log = structlog.get_logger(__name__)


@job_app.periodic(cron="* * * * *", periodic_id="worker-retry-stalled")
@job_app.task(
    name="worker.retry_stalled_jobs", queue="maintenance", queueing_lock="worker-retry-stalled"
)
async def retry_stalled_jobs(timestamp: int) -> None:
    """Jobs left `doing` by a worker that stopped sending heartbeats are queued again."""
    manager = job_app.job_manager
    for job in await manager.get_stalled_jobs():
        try:
            await manager.retry_job(job)
            log.warning("worker.job.stalled_retried", job_id=job.id, task=job.task_name)
        except UniqueViolation as exc:
            # Another job with the same queueing lock already waits to do the same work.
            # (Retrying raises the raw violation; only deferring turns it into AlreadyEnqueued.)
            if exc.constraint_name != QUEUEING_LOCK_CONSTRAINT:
                raise
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            log.warning("worker.job.stalled_dropped", job_id=job.id, task=job.task_name)
