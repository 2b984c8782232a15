"""API keys: creation (the secret is shown once), verification, revocation."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository
from app.auth.models import ApiKey
from app.auth.scopes import Scope
from app.db import utcnow
from app.errors import Conflict, NotFound

log = structlog.get_logger(__name__)

KEY_PREFIX = "pgk_"
# How long a verified key is trusted from memory; revocation reaches every process within this.
VERIFIED_KEY_TTL_SECONDS = 2.0
# A live key in use is re-read in the background once its answer is this old (< the TTL).
REFRESH_AHEAD_SECONDS = 1.0
LAST_USED_RESOLUTION_SECONDS = 60.0
MAX_MEMO_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a verified API key."""

    key_id: int
    name: str
    scopes: frozenset[str]


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy key: enough, and cheap on the hot path."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh API key secret."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(session: AsyncSession, name: str, scopes: Sequence[Scope]) -> str:
    """Store a new key's hash and return its secret (the only time it is visible)."""
    if await repository.by_name(session, name) is not None:
        raise Conflict(f"an API key named {name!r} already exists")
    secret = new_secret()
    try:
        await repository.add(
            session,
            ApiKey(name=name, secret_hash=hash_secret(secret), scopes=[s.value for s in scopes]),
        )
    except IntegrityError as exc:
        raise Conflict(f"an API key named {name!r} already exists") from exc
    return secret


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    """Every key, revoked ones included."""
    return await repository.all_keys(session)


async def revoke_key(session: AsyncSession, name: str) -> ApiKey:
    """Revoke a key by name; revoking twice keeps the first time."""
    key = await repository.by_name(session, name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


@dataclass(frozen=True, slots=True)
class _Memo:
    """What one read of a key said, and until when (monotonic seconds) it may be trusted."""

    principal: Principal | None
    refresh_at: float
    expires_at: float


class KeyVerifier:
    """Verifies bearer keys from a memo that no request waits to refresh under steady traffic.

    - An answer is trusted for `VERIFIED_KEY_TTL_SECONDS` from the moment its read began, so a
      revocation reaches every process within that.
    - Single flight: a missing or expired key is read once however many requests want it; they
      all await the same task.
    - Refresh ahead: once a live key's answer is `REFRESH_AHEAD_SECONDS` old, the next request
      starts one background re-read and is still answered from the memo.
    - `last_used_at` is never written on the request path: uses are noted in memory and a
      background flush writes, in one statement, every key last written more than
      `LAST_USED_RESOLUTION_SECONDS` ago.

    Without these, every request in flight when a key's memo expired opened its own session
    (pool checkout, BEGIN, SELECT, COMMIT) at once, and the pool queue stalled them all.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Monotonic seconds; tests move it to make a memo expire without waiting.
        self.clock = clock
        self._memo: dict[str, _Memo] = {}
        self._reads: dict[str, asyncio.Task[_Memo]] = {}
        self._written_at: dict[int, float] = {}
        self._due: dict[int, datetime] = {}
        self._flush: asyncio.Task[None] | None = None
        self._closed = False

    async def verify(self, secret: str) -> Principal | None:
        """The principal for a live key, or None for an unknown or revoked one."""
        digest = hash_secret(secret)
        now = self.clock()
        memo = self._memo.get(digest)
        if memo is None or now >= memo.expires_at:
            memo = await self._read_shared(digest)
        elif now >= memo.refresh_at and digest not in self._reads and not self._closed:
            self._start_read(digest)
        principal = memo.principal
        if principal is not None:
            self._note_use(principal.key_id, now)
        return principal

    async def _read_shared(self, digest: str) -> _Memo:
        task = self._reads.get(digest)
        if task is None:
            task = self._start_read(digest)
        # A waiter that goes away (client disconnect) must not cancel the read for the others.
        return await asyncio.shield(task)

    def _start_read(self, digest: str) -> asyncio.Task[_Memo]:
        task = asyncio.create_task(self._read(digest), name="api-key-read")
        self._reads[digest] = task

        def done(finished: asyncio.Task[_Memo]) -> None:
            if self._reads.get(digest) is finished:
                del self._reads[digest]
            if not finished.cancelled() and (exc := finished.exception()) is not None:
                log.warning("auth.key.read_failed", error_type=type(exc).__name__)

        task.add_done_callback(done)
        return task

    async def _read(self, digest: str) -> _Memo:
        started = self.clock()
        async with self._sessionmaker() as session:
            key = await repository.by_secret_hash(session, digest)
        principal = None
        if key is not None and key.revoked_at is None:
            principal = Principal(key.id, key.name, frozenset(key.scopes))
        refresh_at = started + (
            REFRESH_AHEAD_SECONDS if principal is not None else VERIFIED_KEY_TTL_SECONDS
        )
        memo = _Memo(principal, refresh_at, started + VERIFIED_KEY_TTL_SECONDS)
        if len(self._memo) >= MAX_MEMO_ENTRIES and digest not in self._memo:
            self._memo.clear()
        self._memo[digest] = memo
        return memo

    def _note_use(self, key_id: int, now: float) -> None:
        written = self._written_at.get(key_id)
        if written is not None and now - written < LAST_USED_RESOLUTION_SECONDS:
            return
        self._written_at[key_id] = now
        self._due[key_id] = utcnow()
        if self._flush is None and not self._closed:
            self._flush = asyncio.create_task(self._write_uses(), name="api-key-last-used")

    async def _write_uses(self) -> None:
        try:
            while self._due:
                due, self._due = self._due, {}
                try:
                    async with self._sessionmaker() as session, session.begin():
                        await repository.touch_many(session, due)
                except SQLAlchemyError as exc:  # advisory data: never fail a request over it
                    log.warning("auth.key.last_used_failed", error_type=type(exc).__name__)
        finally:
            self._flush = None

    async def settle(self) -> None:
        """Wait until no read or write is in flight in the background."""
        while self._reads or self._flush is not None:
            await asyncio.gather(
                *self._reads.values(), *filter(None, [self._flush]), return_exceptions=True
            )

    async def aclose(self) -> None:
        """Start nothing new; cancel background reads; write the uses noted so far."""
        self._closed = True
        for task in self._reads.values():
            task.cancel()
        await self.settle()
