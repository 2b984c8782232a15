"""The outgoing webhooks' worker jobs: fan an event out, attempt a delivery, sweep for lost jobs."""

from __future__ import annotations

from typing import Any

from procrastinate import JobContext

from app.clients import policy
from app.kit.jobs import job_app
from app.settings import Settings
from app.webhooks import delivery_flow
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType
from app.worker import runtime


def payload_completer(settings: Settings) -> webhooks_service.PayloadCompleter:
    """Adds what events need from the worker's settings: `allowed` to `client.status_changed`."""

    def complete(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        if event_type == EventType.CLIENT_STATUS_CHANGED.value and "to_status" in data:
            allowed = policy.allows(str(data["to_status"]), settings.unaffiliated_access)
            return {**data, "allowed": allowed}
        return data

    return complete


@job_app.task(name=webhooks_service.FAN_OUT_TASK, queue=webhooks_service.QUEUE, pass_context=True)
async def fan_out(context: JobContext, event_id: str) -> None:
    """One delivery per receiver configured in this worker's settings, each with its job."""
    resources = runtime.resources_of(context)
    async with resources.sessionmaker() as session, session.begin():
        await webhooks_service.fan_out(
            session,
            event_id,
            resources.settings.webhook,
            complete=payload_completer(resources.settings),
        )


@job_app.task(name=webhooks_service.DELIVER_TASK, queue=webhooks_service.QUEUE, pass_context=True)
async def deliver(context: JobContext, delivery_id: int) -> None:
    """POST one delivery; on failure the next attempt is queued with backoff."""
    resources = runtime.resources_of(context)
    await delivery_flow.attempt(
        resources.sessionmaker,
        resources.webhook_http,
        resources.settings.webhook,
        delivery_id,
        box=resources.cipher,
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
