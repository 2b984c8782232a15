"""The worker process's resources, built once at start and handed to tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.ctct.client import CtctClient, build_ctct_client
from app.db import create_engine, create_sessionmaker
from app.kit.crypto import PasswordCipher
from app.settings import Settings
from app.webhooks import operations as webhooks_operations
from app.webhooks.delivery_flow import build_http as build_webhook_http


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    ctct: CtctClient
    cipher: PasswordCipher
    webhook_http: httpx.AsyncClient
    # The CTCT transport the worker was started with (tests: the in-process sandbox), for jobs
    # that build CTCT clients of their own.
    ctct_transport: httpx.AsyncBaseTransport | None = None


RESOURCES_KEY = "resources"


def resources_of(context: JobContext) -> WorkerResources:
    """The running worker's resources, handed to every job through its context."""
    resources = context.additional_context.get(RESOURCES_KEY)
    if not isinstance(resources, WorkerResources):
        raise RuntimeError("worker resources are not started (run `partnergate worker`)")
    return resources


@asynccontextmanager
async def started(
    settings: Settings, *, ctct_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[WorkerResources]:
    """Build the engine, the CTCT client and the cipher; close them on exit."""
    database_url = settings.database.url
    if database_url is None:
        raise RuntimeError("DATABASE_URL is not set (make run starts an embedded Postgres)")
    engine = create_engine(
        database_url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_timeout=settings.database.pool_timeout,
    )
    # One CTCT client for every job; an audit run or a shared read meters its own calls on it.
    ctct = build_ctct_client(
        settings.ctct,
        engine=engine,
        transport=ctct_transport,
        on_quota_low=webhooks_operations.announce_quota_low,
    )
    resources = WorkerResources(
        settings=settings,
        database_url=database_url,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        ctct=ctct,
        cipher=PasswordCipher(settings.provision.encryption_keys),
        webhook_http=build_webhook_http(settings.webhook),
        ctct_transport=ctct_transport,
    )
    try:
        yield resources
    finally:
        await resources.webhook_http.aclose()
        await ctct.aclose()
        await engine.dispose()
