"""The outgoing webhooks' worker jobs: fan an event out, attempt a delivery, sweep for lost jobs."""

from __future__ import annotations

from procrastinate import JobContext

from app.kit.jobs import job_app
from app.webhooks import delivery_flow
from app.webhooks import service as webhooks_service
from app.worker import runtime


@job_app.task(name=webhooks_service.FAN_OUT_TASK, queue=webhooks_service.QUEUE, pass_context=True)
async def fan_out(context: JobContext, event_id: str) -> None:
    """One delivery per receiver configured in this worker's settings, each with its job."""
    resources = runtime.resources_of(context)
    async with resources.sessionmaker() as session, session.begin():
        await webhooks_service.fan_out(session, event_id, resources.settings.webhook)


@job_app.task(name=webhooks_service.DELIVER_TASK, queue=webhooks_service.QUEUE, pass_context=True)
async def deliver(context: JobContext, delivery_id: int) -> None:
    """POST one delivery; on failure the next attempt is queued with backoff."""
    resources = runtime.resources_of(context)
    await delivery_flow.attempt(
        resources.sessionmaker,
        resources.webhook_http,
        resources.settings.webhook,
        delivery_id,
    )


@job_app.periodic(cron="* * * * *", periodic_id="webhooks-sweep")
@job_app.task(
    name=webhooks_service.SWEEP_TASK,
    queue=webhooks_service.QUEUE,
    queueing_lock=webhooks_service.SWEEP_TASK,
    pass_context=True,
)
async def sweep(context: JobContext, timestamp: int) -> None:
    """Every minute: events and deliveries whose job failed or vanished get one again."""
    resources = runtime.resources_of(context)
    async with resources.sessionmaker() as session, session.begin():
        await webhooks_service.restore_lost_jobs(session)
