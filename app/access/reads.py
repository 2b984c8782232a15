"""Reading the store into the decision cache without stampedes.

- Single flight: a client missing from the cache is read once however many requests want it;
  they await one shielded task, so a client disconnecting does not cancel the others' read.
- Refill behind invalidations: when a status change drops a cached client, the client is
  queued and re-read in the background (up to `REFILL_BATCH` ids per query), so the next
  request usually finds it cached again instead of waiting on the store.

Both fill under the cache's generation rule: a read that raced with an invalidation is not
cached (`DecisionCache.put`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import islice

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.access import repository
from app.access.cache import DecisionCache, Snapshot

log = structlog.get_logger(__name__)

REFILL_BATCH = 1_000


class CacheFiller:
    """Fills `cache` from the store: one read per client in flight, refills in the background."""

    def __init__(self, reader: AsyncEngine, cache: DecisionCache) -> None:
        self._reader = reader
        self.cache = cache
        self._reads: dict[str, asyncio.Task[Snapshot | None]] = {}
        self._pending: dict[str, None] = {}  # ordered set of ids to re-read
        self._refiller: asyncio.Task[None] | None = None
        self._closed = False
        cache.on_invalidated = self.refill_later

    async def snapshot(self, account_id: str) -> Snapshot | None:
        """What the store says about one client (cached, or read once for all who ask)."""
        snapshot = self.cache.get(account_id)
        if snapshot is not None:
            return snapshot
        task = self._reads.get(account_id)
        if task is None:
            task = asyncio.create_task(self._read(account_id), name="access-read")
            self._reads[account_id] = task
            task.add_done_callback(lambda done: self._forget(account_id, done))
        return await asyncio.shield(task)

    async def snapshots(self, account_ids: Sequence[str]) -> dict[str, Snapshot]:
        """Snapshots of the known ones among `account_ids`; cache misses cost one query."""
        found: dict[str, Snapshot] = {}
        missing: list[str] = []
        for account_id in dict.fromkeys(account_ids):
            snapshot = self.cache.get(account_id)
            if snapshot is None:
                missing.append(account_id)
            else:
                found[account_id] = snapshot
        if missing:
            found.update(await self._read_many(missing))
        return found

    def refill_later(self, account_id: str) -> None:
        """Queue a client whose cached entry was invalidated for a background re-read."""
        if self._closed:
            return
        self._pending[account_id] = None
        if self._refiller is None:
            self._refiller = asyncio.create_task(self._refill(), name="access-refill")

    async def aclose(self) -> None:
        """Stop refilling; cancel the reads in flight."""
        self._closed = True
        self._pending.clear()
        tasks = [*self._reads.values(), *filter(None, [self._refiller])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, account_id: str) -> Snapshot | None:
        generation = self.cache.generation
        async with self._reader.connect() as conn:
            row = await repository.status_of(conn, account_id)
        if row is None:
            return None
        snapshot = Snapshot.of(*row)
        self.cache.put(account_id, snapshot, generation)
        return snapshot

    async def _read_many(self, account_ids: Sequence[str]) -> dict[str, Snapshot]:
        generation = self.cache.generation
        async with self._reader.connect() as conn:
            rows = await repository.statuses_of(conn, account_ids)
        found = {account_id: Snapshot.of(*row) for account_id, row in rows.items()}
        for account_id, snapshot in found.items():
            self.cache.put(account_id, snapshot, generation)
        return found

    async def _refill(self) -> None:
        try:
            while self._pending:
                batch = list(islice(self._pending, REFILL_BATCH))
                for account_id in batch:
                    del self._pending[account_id]
                try:
                    await self._read_many(batch)
                except SQLAlchemyError as exc:  # requests read the store themselves meanwhile
                    log.warning(
                        "access.refill.failed", error_type=type(exc).__name__, clients=len(batch)
                    )
        finally:
            self._refiller = None

    def _forget(self, account_id: str, done: asyncio.Task[Snapshot | None]) -> None:
        if self._reads.get(account_id) is done:
            del self._reads[account_id]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter got it already
