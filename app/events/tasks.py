"""The events worker job: attempt one webhook delivery."""

from __future__ import annotations

from procrastinate import JobContext

from app.events import delivery, service
from app.kit.jobs import job_app as worker_app
from app.worker import runtime


@worker_app.task(name=service.DELIVER_TASK, queue=service.QUEUE, pass_context=True)
async def deliver(context: JobContext, delivery_id: int) -> None:
    """POST one delivery; on failure the next attempt is queued with backoff."""
    resources = runtime.resources_of(context)
    await delivery.attempt(resources.sessionmaker, resources.settings.webhook, delivery_id)
