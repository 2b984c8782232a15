"""Provisioning's worker jobs: send a request; read the partner list for unknown outcomes;
sweep for stuck work and expired keys."""

from __future__ import annotations

import structlog
from procrastinate import JobContext

from app.kit.jobs import job_app
from app.provisioning import attempt_flow, metrics, read_flow, reads, service, transitions
from app.provisioning.resources import ProvisioningResources
from app.worker import runtime

log = structlog.get_logger(__name__)

SWEEP_TASK = "provisioning.sweep"


def provisioning_resources(resources: runtime.WorkerResources) -> ProvisioningResources:
    """What provisioning's flows need, from the worker's resources."""
    return ProvisioningResources(
        settings=resources.settings,
        sessionmaker=resources.sessionmaker,
        ctct=resources.ctct,
        cipher=resources.cipher,
    )


@job_app.task(name=transitions.SEND_TASK, queue=transitions.QUEUE, pass_context=True)
async def send_request(context: JobContext, request_id: int) -> None:
    """Attempt one provisioning request when it is due."""
    resources = provisioning_resources(runtime.resources_of(context))
    await attempt_flow.drive(resources, request_id)


@job_app.task(name=reads.RECONCILE_TASK, queue=reads.RECONCILE_QUEUE, pass_context=True)
async def reconcile(context: JobContext) -> None:
    """Carry the partner-list read on that answers every request whose outcome is unknown."""
    await read_flow.run(provisioning_resources(runtime.resources_of(context)))


@job_app.periodic(cron="* * * * * */10", periodic_id="provisioning-sweep")
@job_app.task(
    name=SWEEP_TASK,
    queue=transitions.QUEUE,
    queueing_lock="provisioning-sweep",
    pass_context=True,
)
async def sweep(context: JobContext, timestamp: int) -> None:
    """Periodic safety net; see `sweep_once`."""
    await sweep_once(provisioning_resources(runtime.resources_of(context)))


async def sweep_once(p: ProvisioningResources) -> None:
    """Return abandoned in-flight requests, restore lost jobs, release expired keys, measure."""
    async with p.sessionmaker() as session, session.begin():
        report = await service.sweep(
            session,
            idempotency_ttl=p.settings.idempotency_ttl,
            settings=p.settings.provision,
        )
    if report.keys_released or report.passwords_erased:
        log.info(
            "provisioning.sweep.cleaned",
            keys_released=report.keys_released,
            passwords_erased=report.passwords_erased,
        )
    metrics.record(report.outbox)
