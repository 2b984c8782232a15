"""Cross-process cache invalidation: LISTEN on `client_status`, with a heartbeat and reconnects.

Every status change runs `pg_notify('client_status', encoded_account_id)` in its transaction, so
each replica hears it on commit and drops that client from its cache.

A quiet LISTEN connection cannot tell "nothing changed" from "the connection silently died", so
the listener runs `SELECT 1` every `HEARTBEAT_SECONDS`. Postgres delivers pending notifications
before answering, so when a heartbeat that *started* at t returns, every change committed before
t has been applied to the cache; the cache is then trusted until t + `TRUST_SECONDS`. If the
heartbeat fails or stalls, trust lapses by itself and requests read the store until the
listener has reconnected, cleared the cache and proved itself again. No cached answer can
therefore be older than a committed change by more than `TRUST_SECONDS` (< 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import psycopg
import structlog
from psycopg import sql

from app.access.cache import DecisionCache
from app.clients.models import STATUS_CHANNEL
from app.kit.backoff import backoff_delay

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 0.2
# Only for declaring the connection dead; trust lapses after TRUST_SECONDS regardless.
HEARTBEAT_TIMEOUT_SECONDS = 5.0
TRUST_SECONDS = 0.75
RECONNECT_BASE_SECONDS = 0.1
# Reconnects never spin: the first waits 50-100 ms, later ones up to the cap (full jitter).
RECONNECT_FLOOR_SECONDS = 0.05
RECONNECT_CAP_SECONDS = 5.0


class StatusListener:
    """Keeps `cache` in step with status changes made by any process."""

    def __init__(self, conninfo: str, cache: DecisionCache) -> None:
        self._conninfo = conninfo
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        self._failures = 0  # consecutive, for the reconnect backoff

    def start(self) -> None:
        """Run the listener in the background until `stop`."""
        self._task = asyncio.create_task(self._run(), name="access-status-listener")

    async def stop(self) -> None:
        """Cancel the listener and wait for it to close its connection."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._cache.distrust()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._cache.distrust()
                self.connected.clear()
                self._failures += 1
                delay = backoff_delay(
                    self._failures - 1,
                    base=RECONNECT_BASE_SECONDS,
                    cap=RECONNECT_CAP_SECONDS,
                    floor=RECONNECT_FLOOR_SECONDS,
                )
                log.warning(
                    "access.listener.disconnected",
                    error_type=type(exc).__name__,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with asyncio.timeout(RECONNECT_CAP_SECONDS):
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            async with asyncio.timeout(HEARTBEAT_TIMEOUT_SECONDS):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(STATUS_CHANNEL)))
            # Changes made while we were not listening are lost: start from nothing.
            self._cache.clear()
            await self._heartbeat(conn)
            self.connections += 1
            self._failures = 0
            self.connected.set()
            log.info("access.listener.connected", connections=self.connections)
            while True:
                async for notify in conn.notifies(timeout=HEARTBEAT_SECONDS):
                    self._apply(notify.payload)
                await self._heartbeat(conn)
        finally:
            await conn.close()

    async def _heartbeat(self, conn: psycopg.AsyncConnection[object]) -> None:
        started = time.monotonic()
        async with asyncio.timeout(HEARTBEAT_TIMEOUT_SECONDS):
            await conn.execute("SELECT 1")
            # Notifications that arrived during the query wait in psycopg's backlog.
            async for notify in conn.notifies(timeout=0):
                self._apply(notify.payload)
        self._cache.trust_until(started + TRUST_SECONDS)

    def _apply(self, payload: str) -> None:
        if payload:
            self._cache.invalidate(payload)
        else:
            self._cache.clear()
