"""The audit's worker jobs: a queued run (from the API), and the periodic run.

The periodic run's cron comes from `AUDIT_SCHEDULE`, so it is registered when the worker starts
(`register_schedule`), not at import. procrastinate records each periodic deferral in
`procrastinate_periodic_defers` (unique per task and timestamp), so however many workers run,
one job is deferred per period; the run's unique `scheduled_for` enforces the same in our table.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from procrastinate import JobContext

from app.audit import runner
from app.audit import service as audit_service
from app.audit.models import AuditTrigger
from app.kit.jobs import job_app
from app.worker import runtime

log = structlog.get_logger(__name__)

SCHEDULED_TASK = "audit.scheduled"
SWEEP_TASK = "audit.sweep"
PERIODIC_ID = "audit"


@job_app.task(name=audit_service.RUN_TASK, queue=audit_service.QUEUE, pass_context=True)
async def run_requested(context: JobContext, run_id: int) -> None:
    """Carry a run queued by `POST /v1/audits` to its end."""
    resources = runtime.resources_of(context)
    await runner.run_once(
        resources.sessionmaker,
        resources.settings,
        resources.ctct,
        trigger=AuditTrigger.API,
        run_id=run_id,
    )


@job_app.task(
    name=SCHEDULED_TASK, queue=audit_service.QUEUE, queueing_lock=SCHEDULED_TASK, pass_context=True
)
async def run_scheduled(context: JobContext, timestamp: int) -> None:
    """The run of the period starting at `timestamp` (skipped if another run is active)."""
    resources = runtime.resources_of(context)
    await runner.run_once(
        resources.sessionmaker,
        resources.settings,
        resources.ctct,
        trigger=AuditTrigger.SCHEDULE,
        scheduled_for=datetime.fromtimestamp(timestamp, UTC),
    )


@job_app.periodic(cron="* * * * *", periodic_id="audit-sweep")
@job_app.task(
    name=SWEEP_TASK, queue=audit_service.QUEUE, queueing_lock=SWEEP_TASK, pass_context=True
)
async def sweep(context: JobContext, timestamp: int) -> None:
    """Every minute: a stranded run (job gone, unclaimed too long, no heartbeat) frees its slot."""
    resources = runtime.resources_of(context)
    async with resources.sessionmaker() as session, session.begin():
        await audit_service.expire_stranded(session)


def register_schedule(cron: str) -> None:
    """Register (or re-register with a new cron) the periodic audit on the worker app."""
    registry = job_app.periodic_registry
    registry.periodic_tasks.pop((SCHEDULED_TASK, PERIODIC_ID), None)
    registry.register_task(
        task=run_scheduled,
        cron=cron,
        periodic_id=PERIODIC_ID,
        configure_kwargs={},
    )
    log.info("audit.schedule.registered", cron=cron)
