"""Worker housekeeping shared by every domain: jobs whose worker died are run again (or,
for periodic tasks, left to the next period)."""

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
    """Jobs left `doing` by a worker that stopped sending heartbeats are queued again; those of
    a periodic task are dropped, since the task's next period does their work."""
    manager = job_app.job_manager
    periodic = {name for name, _ in job_app.periodic_registry.periodic_tasks}
    for job in await manager.get_stalled_jobs():
        if job.task_name in periodic:
            # Queued again, it would hold the task's queueing lock when the next period is
            # deferred, and procrastinate would skip that period.
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            log.warning("worker.job.stalled_dropped", job_id=job.id, task=job.task_name)
            continue
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
