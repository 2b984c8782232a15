"""Background jobs: the one procrastinate App, and the one way to defer a job.

The App is built at import without opening anything: its connector connects only when the
worker (`partnergate worker`) opens it. Job *definitions* live in `app/worker/` (the layer that
may import every domain); a domain defers a job by its task name, inside the caller's own
transaction, with `defer_in_transaction`, so a rollback discards the row and its job together.

A job can still fail (a bug, a crash mid-transaction) and leave its row waiting for nobody; each
domain's sweep asks `locks_without_live_job` which of its waiting rows lost their job, and
defers it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Every module that registers tasks on `job_app`; the worker imports them when it starts.
TASK_MODULES: tuple[str, ...] = (
    "app.worker.maintenance",
    "app.worker.provisioning_jobs",
    "app.worker.audit_jobs",
    "app.worker.webhook_jobs",
    "app.worker.import_jobs",
)

job_app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=list(TASK_MODULES),
)


async def defer_in_transaction(
    session: AsyncSession,
    *,
    task: str,
    queue: str,
    queueing_lock: str,
    schedule_at: datetime | None = None,
    **arguments: Any,
) -> bool:
    """Queue `task` in the session's transaction; False if its job was already waiting.

    One job per `queueing_lock` waits at a time. When one already waits, it is brought forward
    to `schedule_at` if it would run later: a job never waits past the time asked for now.
    """
    try:
        # A savepoint: the unique violation of a waiting job must not end the caller's work.
        # The connection is asked for inside it, which is what makes SQLAlchemy emit SAVEPOINT
        # (procrastinate writes on the raw connection, which the session does not see).
        async with session.begin_nested():
            raw = await (await session.connection()).get_raw_connection()
            deferrer = job_app.configure_task(
                name=task,
                queue=queue,
                connection=raw.driver_connection,
                queueing_lock=queueing_lock,
                schedule_at=schedule_at,
            )
            await deferrer.defer_async(**arguments)
    except AlreadyEnqueued:
        if schedule_at is not None:
            await session.execute(
                text(
                    "UPDATE procrastinate_jobs SET scheduled_at = :at "
                    "WHERE queueing_lock = :lock AND status = 'todo' "
                    "AND (scheduled_at IS NULL OR scheduled_at > :at)"
                ),
                {"lock": queueing_lock, "at": schedule_at},
            )
        return False
    return True


async def defer_each_in_transaction(
    session: AsyncSession, *, task: str, queue: str, jobs: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Queue one job of `task` per (queueing lock, arguments), in one statement, in the
    session's transaction; as `defer_in_transaction` does for each when a lock already has a
    waiting job (the batch is all or nothing)."""
    if not jobs:
        return
    try:
        async with session.begin_nested():
            raw = await (await session.connection()).get_raw_connection()
            template = job_app.configure_task(
                name=task, queue=queue, connection=raw.driver_connection
            ).job
            await job_app.job_manager.batch_defer_jobs_async(
                [
                    template.evolve(queueing_lock=lock, task_kwargs=arguments)
                    for lock, arguments in jobs
                ],
                connection=raw.driver_connection,
            )
    except AlreadyEnqueued:
        for lock, arguments in jobs:
            await defer_in_transaction(
                session, task=task, queue=queue, queueing_lock=lock, **arguments
            )


# A job in these states will still run (or is running): its row is not stranded.
LIVE_JOB_STATUSES = ("todo", "doing")


async def locks_without_live_job(session: AsyncSession, locks: Sequence[str]) -> list[str]:
    """The queueing locks among `locks` that no waiting or running job holds, in order."""
    if not locks:
        return []
    rows = await session.execute(
        text(
            "SELECT DISTINCT queueing_lock FROM procrastinate_jobs "
            "WHERE queueing_lock = ANY(CAST(:locks AS text[])) "
            "AND status = ANY(CAST(:statuses AS procrastinate_job_status[]))"
        ),
        {"locks": list(locks), "statuses": list(LIVE_JOB_STATUSES)},
    )
    live = {row[0] for row in rows}
    return [lock for lock in locks if lock not in live]
