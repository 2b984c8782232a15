"""Wiring at start: the lifespan builds the access check's per-process resources here and tears
them down on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.access.cache import DecisionCache
from app.access.listener import StatusListener
from app.access.service import AccessService, Probed
from app.clients.service import Actor
from app.ctct.client import CtctClient
from app.ctct.priorities import Priority
from app.db import libpq_url
from app.settings import Settings


@asynccontextmanager
async def access_service(
    settings: Settings,
    *,
    database_url: str,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctct: CtctClient,
) -> AsyncIterator[AccessService]:
    """The decision cache, its LISTEN connection and the service; all stopped on exit."""

    async def probe(
        account_id: str, actor: Actor, priority: Priority, max_wait: float | None
    ) -> Probed:
        from app.membership import probe as membership_probe  # membership imports clients

        result = await membership_probe.probe(
            ctct,
            sessionmaker,
            account_id,
            actor=actor,
            priority=priority,
            our_partner_id=settings.ctct.partner_id,
            max_wait=max_wait,
        )
        return Probed(result.client, result.answered)

    cache = DecisionCache(settings.access.cache_size)
    listener = StatusListener(libpq_url(database_url), cache)
    service = AccessService(settings, engine, sessionmaker, cache, probe)
    listener.start()
    try:
        yield service
    finally:
        await service.aclose()
        await listener.stop()
