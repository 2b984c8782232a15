"""`partnergate worker`: run the procrastinate worker with this process's resources."""

from __future__ import annotations

import httpx
import procrastinate
import structlog

from app.db import libpq_url
from app.kit.jobs import job_app
from app.settings import Settings
from app.worker import job_metrics
from app.worker.audit_jobs import register_schedule
from app.worker.http_server import Phase, serving
from app.worker.provisioning_jobs import provisioning_resources, sweep_once
from app.worker.runtime import RESOURCES_KEY, started

log = structlog.get_logger(__name__)

# Slack beyond one CTCT call so an in-flight send can finish after SIGTERM.
SHUTDOWN_SLACK_SECONDS = 5.0


async def run_worker(
    settings: Settings,
    *,
    ctct_transport: httpx.AsyncBaseTransport | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run jobs until SIGTERM/SIGINT; in-flight work finishes or is handed back, never lost."""
    async with (
        started(settings, ctct_transport=ctct_transport) as resources,
        serving(settings.worker, sessionmaker=resources.sessionmaker, job_app=job_app) as http,
    ):
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(resources.database_url),
            min_size=1,
            max_size=settings.provision.worker_concurrency + 2,
        )
        with job_app.replace_connector(connector):
            async with job_app.open_async():
                # Whatever a previous worker left in flight is handed back before new work.
                await sweep_once(provisioning_resources(resources))
                register_schedule(settings.audit.schedule)
                log.info("worker.run.started", concurrency=settings.provision.worker_concurrency)
                http.phase = Phase.RUNNING
                await job_app.run_worker_async(
                    concurrency=settings.provision.worker_concurrency,
                    fetch_job_polling_interval=settings.provision.worker_poll_seconds,
                    shutdown_graceful_timeout=settings.ctct.timeout_seconds
                    + SHUTDOWN_SLACK_SECONDS,
                    delete_jobs="successful",
                    additional_context={RESOURCES_KEY: resources},
                    install_signal_handlers=install_signal_handlers,
                    worker_middleware=[job_metrics.measure],
                )
                log.info("worker.run.stopped")
