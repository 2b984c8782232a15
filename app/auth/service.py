"""API keys: creation (the secret is shown once), verification, revocation."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository
from app.auth.models import ApiKey
from app.auth.scopes import Scope
from app.db import utcnow
from app.errors import Conflict, NotFound

KEY_PREFIX = "pgk_"
# How long a verified key is trusted from memory; revocation reaches every process within this.
VERIFIED_KEY_TTL_SECONDS = 2.0
LAST_USED_RESOLUTION_SECONDS = 60.0


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


class KeyVerifier:
    """Verifies bearer keys with a short in-memory memo so the hot path avoids the database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._verified: dict[str, tuple[float, Principal | None]] = {}
        self._last_touched: dict[int, float] = {}

    async def verify(self, secret: str) -> Principal | None:
        """The principal for a live key, or None for an unknown or revoked one."""
        digest = hash_secret(secret)
        now = time.monotonic()
        memo = self._verified.get(digest)
        if memo is not None and now - memo[0] < VERIFIED_KEY_TTL_SECONDS:
            return memo[1]
        async with self._sessionmaker() as session, session.begin():
            key = await repository.by_secret_hash(session, digest)
            principal = None
            if key is not None and key.revoked_at is None:
                principal = Principal(key.id, key.name, frozenset(key.scopes))
                if now - self._last_touched.get(key.id, -1e9) >= LAST_USED_RESOLUTION_SECONDS:
                    await repository.touch(session, key.id, utcnow())
                    self._last_touched[key.id] = now
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = (now, principal)
        return principal
