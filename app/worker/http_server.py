"""The worker's own HTTP server: `/healthz` for the orchestrator, `/metrics` for Prometheus.

It runs on the worker's event loop, so a stalled loop fails the liveness probe as it should,
and it leaves SIGTERM and SIGINT to procrastinate, which owns the worker's graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import procrastinate
import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.provisioning import metrics as outbox_metrics
from app.settings import WorkerSettings
from app.worker import job_metrics

log = structlog.get_logger(__name__)

STOP_TIMEOUT_SECONDS = 5.0


class Phase(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass
class WorkerHttp:
    """What the server reports, and where it listens."""

    host: str
    port: int
    phase: Phase = Phase.STARTING


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker's signals are procrastinate's: it finishes or hands back jobs on SIGTERM.
        yield


def build_app(
    status: WorkerHttp,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_app: procrastinate.App,
) -> Starlette:
    """The two routes; /metrics reads the outbox and the job queues first."""

    async def healthz(request: Request) -> Response:
        code = 200 if status.phase is Phase.RUNNING else 503
        return JSONResponse({"status": "ok" if code == 200 else status.phase.value}, code)

    async def metrics(request: Request) -> Response:
        await outbox_metrics.refresh(sessionmaker)
        await job_metrics.refresh(sessionmaker, job_app)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


@contextlib.asynccontextmanager
async def serving(
    settings: WorkerSettings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_app: procrastinate.App,
) -> AsyncIterator[WorkerHttp]:
    """Listen on WORKER_HOST:WORKER_PORT until the block ends; a taken port fails at once."""
    try:
        listener = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        log.error("worker.http.bind_failed", host=settings.host, port=settings.port)
        raise RuntimeError(
            f"the worker cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
            "set WORKER_PORT to a free port"
        ) from exc
    status = WorkerHttp(host=settings.host, port=listener.getsockname()[1])
    config = uvicorn.Config(
        build_app(status, sessionmaker, job_app),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(STOP_TIMEOUT_SECONDS),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    log.info("worker.http.started", host=status.host, port=status.port)
    try:
        yield status
    finally:
        status.phase = Phase.STOPPING
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS + 1)
        listener.close()
        log.info("worker.http.stopped", port=status.port)
