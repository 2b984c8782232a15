"""The access decision: answered from the store (through the cache), never waiting on CTCT for a
client we know. CTCT is asked only for unknown ids, `?consistency=fresh`, and stale clients
(in the background). See docs/access.md for the design.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.access import repository
from app.access.cache import DecisionCache, Snapshot
from app.access.reads import CacheFiller
from app.clients.models import Client, ClientStatus, EventSource
from app.clients.service import Actor
from app.ctct.errors import CtctError
from app.ctct.priorities import Priority
from app.kit.metrics import ACCESS_DECISIONS
from app.settings import Settings, UnaffiliatedAccess

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Probed:
    """A finished probe: the client as recorded, and whether CTCT answered at all."""

    client: Client
    answered: bool


# The probe the lifespan injects: `app.membership.probe.probe` bound to the CTCT client,
# called with (account_id, actor, priority, max_wait).
ProbeFn = Callable[[str, Actor, Priority, float | None], Awaitable[Probed]]

# Stale clients re-probed at once by one process; each holds a pool connection for its lock.
BACKGROUND_PROBE_CONCURRENCY = 2
# Probes (of any kind) one process keeps in flight before it stops starting new ones.
MAX_PROBES_IN_FLIGHT = 1_000
BACKGROUND_ACTOR = Actor(EventSource.PROBE, name="access-check")

Decision = dict[str, Any]

REASON_UNVERIFIED = "unverified"
REASON_CTCT_UNAVAILABLE = "ctct_unavailable"


def _allowed_by_status(settings: Settings) -> dict[str, bool]:
    return {
        ClientStatus.APPROVED.value: True,
        ClientStatus.BILLING_APPROVED.value: True,
        ClientStatus.OTHER_PARTNER.value: False,
        ClientStatus.UNAFFILIATED.value: settings.unaffiliated_access is UnaffiliatedAccess.ALLOW,
        ClientStatus.UNVERIFIED.value: False,
    }


def _reason_by_status(settings: Settings) -> dict[str, str]:
    reasons = {status.value: status.value for status in ClientStatus}
    if settings.unaffiliated_access is UnaffiliatedAccess.ALLOW:
        reasons[ClientStatus.UNAFFILIATED.value] = "unaffiliated_allowed"
    return reasons


class _Cooldown:
    """When each client was last probed in the background (bounded; oldest forgotten first)."""

    def __init__(self, seconds: float, max_size: int = 100_000) -> None:
        self.seconds = seconds
        self._max_size = max_size
        self._at: OrderedDict[str, float] = OrderedDict()

    def ready(self, key: str, now: float) -> bool:
        at = self._at.get(key)
        return at is None or now - at >= self.seconds

    def mark(self, key: str, now: float) -> None:
        self._at[key] = now
        self._at.move_to_end(key)
        while len(self._at) > self._max_size:
            self._at.popitem(last=False)


class AccessService:
    """Decisions for one process: its cache, its in-flight probes, its background work."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        cache: DecisionCache,
        probe: ProbeFn,
    ) -> None:
        self._settings = settings
        # Reads need no transaction: autocommit saves the BEGIN and ROLLBACK round trips.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessionmaker = sessionmaker
        self.cache = cache
        self._filler = CacheFiller(self._reader, cache)
        self._probe = probe
        self._ttl = settings.membership.ttl.total_seconds()
        self._probe_timeout = settings.access.probe_timeout
        self._allowed = _allowed_by_status(settings)
        self._reasons = _reason_by_status(settings)
        self._counters = {
            (status, allowed): ACCESS_DECISIONS.labels(str(allowed).lower(), status)
            for status in self._allowed
            for allowed in (True, False)
        }
        self._inflight: dict[str, asyncio.Task[Probed | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cooldown = _Cooldown(settings.access.reprobe_cooldown)
        self._background_slots = asyncio.Semaphore(BACKGROUND_PROBE_CONCURRENCY)
        self._closed = False

    # -- decisions ---------------------------------------------------------------------------

    async def check(self, account_id: str, *, actor_name: str | None = None) -> Decision:
        """The decision for one client, from the cache or the store; probes unknown ids."""
        snapshot = await self._filler.snapshot(account_id)
        if snapshot is None:
            return await self._check_unknown(account_id, actor_name)
        return self._decide(account_id, snapshot)

    async def check_encoded(self, account_id: str, *, actor_name: str | None = None) -> bytes:
        """`check` as response bytes: a cache hit sends what it encoded when it was filled."""
        snapshot = await self._filler.snapshot(account_id)
        if snapshot is None:
            return orjson.dumps(await self._check_unknown(account_id, actor_name))
        stale = self._stale(account_id, snapshot)
        allowed = self._allowed[snapshot.status]
        self._counters[snapshot.status, allowed].inc()
        body = snapshot.bodies.get(stale)
        if body is None:
            body = snapshot.bodies[stale] = orjson.dumps(
                self._decision(account_id, snapshot, allowed, stale, None)
            )
        return body

    async def check_fresh(self, account_id: str, *, actor_name: str | None = None) -> Decision:
        """Ask CTCT first (within ACCESS_PROBE_TIMEOUT), then decide; the store if CTCT can't."""
        probed = await self._wait(self.probe_shared(account_id, actor_name))
        if probed is not None and probed.answered:
            client = probed.client
            return self._decide(account_id, Snapshot.of(client.status, client.verified_at))
        async with self._reader.connect() as conn:
            row = await repository.status_of(conn, account_id)
        if row is None or row[0] == ClientStatus.UNVERIFIED.value:
            return self._unverified(account_id)
        return self._decide(account_id, Snapshot.of(*row), reason=REASON_CTCT_UNAVAILABLE)

    async def check_many(
        self, account_ids: Sequence[str], *, actor_name: str | None = None
    ) -> list[Decision]:
        """One decision per id, in order; cache misses cost one query in total.

        Unknown ids are probed together (deduplicated, shared with concurrent requests) and the
        batch waits for them at most ACCESS_PROBE_TIMEOUT in total; those not answered by then
        are `unverified` (denied) and their probes finish in the background.
        """
        found = await self._filler.snapshots(account_ids)
        unknown = [
            account_id for account_id in dict.fromkeys(account_ids) if account_id not in found
        ]
        probed: dict[str, Probed] = {}
        if unknown:
            tasks = {
                account_id: self.probe_shared(account_id, actor_name) for account_id in unknown
            }
            pending = [task for task in tasks.values() if task is not None]
            if pending:
                await asyncio.wait(pending, timeout=self._probe_timeout)
            for account_id, task in tasks.items():
                if task is not None and task.done() and not task.cancelled():
                    result = task.result()
                    if result is not None:
                        probed[account_id] = result
        decisions: list[Decision] = []
        for account_id in account_ids:
            snapshot = found.get(account_id)
            if snapshot is not None:
                decisions.append(self._decide(account_id, snapshot))
            elif account_id in probed:
                client = probed[account_id].client
                decisions.append(
                    self._decide(account_id, Snapshot.of(client.status, client.verified_at))
                )
            else:
                decisions.append(self._unverified(account_id))
        return decisions

    def _decide(
        self, account_id: str, snapshot: Snapshot, *, reason: str | None = None
    ) -> Decision:
        stale = self._stale(account_id, snapshot)
        allowed = self._allowed[snapshot.status]
        self._counters[snapshot.status, allowed].inc()
        return self._decision(account_id, snapshot, allowed, stale, reason)

    def _stale(self, account_id: str, snapshot: Snapshot) -> bool:
        verified_ts = snapshot.verified_ts
        stale = verified_ts is None or time.time() - verified_ts > self._ttl
        if stale:
            self.refresh_in_background(account_id)
        return stale

    def _decision(
        self, account_id: str, snapshot: Snapshot, allowed: bool, stale: bool, reason: str | None
    ) -> Decision:
        return {
            "account_id": account_id,
            "allowed": allowed,
            "status": snapshot.status,
            "reason": reason or self._reasons[snapshot.status],
            "verified_at": snapshot.verified_iso,
            "stale": stale,
        }

    def _unverified(self, account_id: str) -> Decision:
        self._counters[ClientStatus.UNVERIFIED.value, False].inc()
        return {
            "account_id": account_id,
            "allowed": False,
            "status": ClientStatus.UNVERIFIED.value,
            "reason": REASON_UNVERIFIED,
            "verified_at": None,
            "stale": True,
        }

    async def _check_unknown(self, account_id: str, actor_name: str | None) -> Decision:
        probed = await self._wait(self.probe_shared(account_id, actor_name))
        if probed is None:
            return self._unverified(account_id)
        client = probed.client
        return self._decide(account_id, Snapshot.of(client.status, client.verified_at))

    async def _wait(self, task: asyncio.Task[Probed | None] | None) -> Probed | None:
        if task is None:
            return None
        try:
            async with asyncio.timeout(self._probe_timeout):
                return await asyncio.shield(task)
        except TimeoutError:
            return None

    # -- probes --------------------------------------------------------------------------------

    def probe_shared(
        self, account_id: str, actor_name: str | None
    ) -> asyncio.Task[Probed | None] | None:
        """The probe of `account_id` in flight in this process, started if there is none."""
        task = self._inflight.get(account_id)
        if task is not None:
            return task
        if self._closed or len(self._inflight) >= MAX_PROBES_IN_FLIGHT:
            return None
        actor = Actor(EventSource.PROBE, name=actor_name)
        return self._start(account_id, self._probe_now(account_id, actor))

    def refresh_in_background(self, account_id: str) -> None:
        """Re-probe a stale client once, whoever else asks meanwhile (here or on a replica)."""
        if account_id in self._inflight or self._closed:
            return
        now = time.monotonic()
        if not self._cooldown.ready(account_id, now) or len(self._inflight) >= MAX_PROBES_IN_FLIGHT:
            return
        self._cooldown.mark(account_id, now)
        self._start(account_id, self._refresh(account_id))

    def _start(
        self, account_id: str, work: Coroutine[Any, Any, Probed | None]
    ) -> asyncio.Task[Probed | None]:
        async def run() -> Probed | None:
            try:
                probed = await work
            except Exception:  # a probe must never take the process down; fail closed
                log.exception("access.probe.crashed", client=account_id)
                return None
            # The probe notified every replica (on commit); don't wait for our own echo.
            self.cache.invalidate(account_id)
            return probed

        task = asyncio.create_task(run(), name=f"access-probe-{account_id}")
        self._inflight[account_id] = task
        self._tasks.add(task)

        def forget(done: asyncio.Task[Probed | None]) -> None:
            self._tasks.discard(done)
            if self._inflight.get(account_id) is done:
                del self._inflight[account_id]

        task.add_done_callback(forget)
        return task

    async def _probe_now(self, account_id: str, actor: Actor) -> Probed | None:
        self._cooldown.mark(account_id, time.monotonic())
        return await self._run_probe(account_id, actor, Priority.INTERACTIVE, "sync")

    async def _refresh(self, account_id: str) -> Probed | None:
        async with self._background_slots, self._reader.connect() as conn:
            if not await repository.try_claim_probe(conn, account_id):
                log.info("access.refresh.skipped", client=account_id, why="claimed_elsewhere")
                return None
            try:
                row = await repository.status_of(conn, account_id)
                if row is None or not self._is_stale(row[1]):
                    log.info("access.refresh.skipped", client=account_id, why="already_fresh")
                    return None
                return await self._run_probe(
                    account_id, BACKGROUND_ACTOR, Priority.BACKGROUND, "refresh"
                )
            finally:
                try:
                    await asyncio.shield(repository.release_probe(conn, account_id))
                except SQLAlchemyError:  # the lock dies with the connection; never pool it
                    await conn.invalidate()

    async def _run_probe(
        self, account_id: str, actor: Actor, priority: Priority, kind: str
    ) -> Probed | None:
        started = time.monotonic()
        max_wait = self._probe_timeout if priority is Priority.INTERACTIVE else None
        try:
            probed = await self._probe(account_id, actor, priority, max_wait)
        except CtctError as exc:
            log.warning(
                "access.probe.failed",
                client=account_id,
                kind=kind,
                error_type=type(exc).__name__,
                duration_ms=_ms(started),
            )
            return None
        log.info(
            "access.probe.done",
            client=account_id,
            kind=kind,
            answered=probed.answered,
            status=probed.client.status,
            duration_ms=_ms(started),
        )
        return probed

    def _is_stale(self, verified_at: datetime | None) -> bool:
        return verified_at is None or time.time() - verified_at.timestamp() > self._ttl

    async def aclose(self) -> None:
        """Stop starting probes; cancel the ones in flight and wait for them to unwind."""
        self._closed = True
        await self._filler.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
