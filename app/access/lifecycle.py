"""Builds the access check's per-process resources in the lifespan and tears them down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.access.cache import DecisionCache
from app.access.listener import StatusListener
from app.access.service import AccessService, Probed
from app.clients.service import Actor
from app.ctct.budget import Priority
from app.db import libpq_url
from app.state import AppState


@asynccontextmanager
async def access_resources(state: AppState) -> AsyncIterator[AccessService]:
    """The decision cache, its LISTEN connection and the service; all stopped on exit."""
    settings = state.settings
    ctct = state.ctct
    assert settings.database.url is not None, "the lifespan checked DATABASE_URL"
    assert ctct is not None, "the lifespan builds the CTCT client first"

    async def probe(
        account_id: str, actor: Actor, priority: Priority, max_wait: float | None
    ) -> Probed:
        from app.membership import probe as membership_probe  # membership imports clients

        result = await membership_probe.probe(
            ctct,
            state.sessionmaker,
            account_id,
            actor=actor,
            priority=priority,
            our_partner_id=settings.ctct.partner_id,
            max_wait=max_wait,
        )
        return Probed(result.client, result.answered)

    cache = DecisionCache(settings.access.cache_size)
    listener = StatusListener(libpq_url(settings.database.url), cache)
    service = AccessService(settings, state.engine, state.sessionmaker, cache, probe)
    listener.start()
    state.access = service
    try:
        yield service
    finally:
        state.access = None
        await service.aclose()
        await listener.stop()
