"""The outbox gauges: how many provisioning requests wait to be sent, and the oldest's age."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.kit.metrics import OUTBOX_DEPTH, OUTBOX_OLDEST_AGE
from app.provisioning import repository

log = structlog.get_logger(__name__)

READ_TIMEOUT_SECONDS = 1.0


def record(stats: repository.OutboxStats) -> None:
    """Set the gauges from one reading."""
    OUTBOX_DEPTH.set(stats.depth)
    oldest = stats.oldest_created_at
    OUTBOX_OLDEST_AGE.set((utcnow() - oldest).total_seconds() if oldest else 0.0)


async def refresh(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Read the outbox and set the gauges; a slow or failing database leaves the last values."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS), sessionmaker() as session:
            stats = await repository.outbox_stats(session)
    except (TimeoutError, SQLAlchemyError) as exc:
        log.warning("provisioning.metrics.unavailable", error_type=type(exc).__name__)
        return
    record(stats)
