"""Provisioning's worker jobs: send a request; sweep for stuck work and expired keys."""

from __future__ import annotations

from datetime import timedelta

import structlog
from procrastinate import JobContext

from app.db import utcnow
from app.provisioning import metrics, repository, sender, service
from app.provisioning.sender import Provisioner
from app.worker import runtime, worker_app

log = structlog.get_logger(__name__)

ORPHAN_GRACE = timedelta(seconds=30)


def _provisioner(context: JobContext) -> Provisioner:
    resources = runtime.resources_of(context)
    return Provisioner(
        settings=resources.settings,
        sessionmaker=resources.sessionmaker,
        ctct=resources.ctct,
        cipher=resources.cipher,
    )


@worker_app.task(name=service.SEND_TASK, queue=service.QUEUE, pass_context=True)
async def send_request(context: JobContext, request_id: int) -> None:
    """Attempt one provisioning request when it is due."""
    await sender.drive(_provisioner(context), request_id)


@worker_app.periodic(cron="* * * * * */10", periodic_id="provisioning-sweep")
@worker_app.task(
    name="provisioning.sweep",
    queue=service.QUEUE,
    queueing_lock="provisioning-sweep",
    pass_context=True,
)
async def sweep(context: JobContext, timestamp: int) -> None:
    """Periodic safety net; see `sweep_once`."""
    await sweep_once(_provisioner(context))


async def sweep_once(p: Provisioner) -> None:
    """Return abandoned in-flight requests, restore lost jobs, release expired keys, measure."""
    async with p.sessionmaker() as session, session.begin():
        await service.release_expired_leases(session)
        await service.requeue_orphans(session, grace=ORPHAN_GRACE)
        released = await repository.release_idempotency_keys(
            session, utcnow() - p.settings.idempotency_ttl
        )
        erased = await repository.erase_stale_passwords(
            session, utcnow() - p.settings.provision.max_age
        )
        stats = await repository.outbox_stats(session)
    if released or erased:
        log.info("provisioning.sweep.cleaned", keys_released=released, passwords_erased=erased)
    metrics.record(stats)
