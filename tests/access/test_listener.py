"""The invalidation feed: a dropped LISTEN connection stops the cache from answering within a
second, and the listener reconnects with an empty cache."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access.cache import DecisionCache, Snapshot
from app.access.listener import StatusListener
from app.clients import repository as clients_repository
from app.db import libpq_url
from tests.kit.polling import poll_until
from tests.kit.tcp_proxy import PostgresProxy


async def _now(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


async def test_a_dropped_listener_stops_the_cache_and_a_reconnect_restarts_it_empty(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    proxy = PostgresProxy(database_url)
    await proxy.start()
    cache = DecisionCache(100)
    listener = StatusListener(libpq_url(proxy.url), cache)
    listener.start()
    try:
        await poll_until(lambda: _now(cache.trusted), bool, timeout=5)
        cache.put("acct-1", Snapshot.of("approved", None), cache.generation)
        assert cache.get("acct-1") is not None

        await proxy.cut()

        await poll_until(lambda: _now(cache.trusted), lambda trusted: not trusted, timeout=10.0)
        assert cache.get("acct-1") is None

        await proxy.start()
        await poll_until(lambda: _now(listener.connections), lambda n: n >= 2, timeout=10)
        await poll_until(lambda: _now(cache.trusted), bool, timeout=10)
        assert len(cache) == 0

        cache.put("acct-2", Snapshot.of("approved", None), cache.generation)
        async with sessionmaker() as session, session.begin():
            await clients_repository.notify_status_changed(session, "acct-2")
        await poll_until(lambda: _now("acct-2" in cache._entries), lambda cached: not cached)
    finally:
        await listener.stop()
        await proxy.cut()


async def test_a_fill_read_before_an_invalidation_is_dropped() -> None:
    cache = DecisionCache(10)
    cache.trust_until(float("inf"))
    generation = cache.generation

    cache.invalidate("acct-1")  # the NOTIFY arrives while the read is in flight
    cache.put("acct-1", Snapshot.of("other_partner", None), generation)

    assert cache.get("acct-1") is None
