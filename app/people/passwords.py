"""Password hashes: argon2id through argon2-cffi, verified off the event loop."""

from __future__ import annotations

import functools
import secrets

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown: a wrong email costs what a wrong password
    does, so response times do not tell which emails exist."""
    return _hasher.hash(secrets.token_urlsafe(16))


def check_strength(password: str) -> str:
    """The password, or ValueError naming the rule it breaks."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password may have at most {MAX_LENGTH} characters")
    return password


def new_password() -> str:
    """A random password to hand to a person once."""
    return secrets.token_urlsafe(15)


async def hash_password(password: str) -> str:
    """An argon2id hash (computed in a worker thread: it takes tens of milliseconds)."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _hasher.verify(hashed or _dummy_hash(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    """Whether `password` matches `hashed`; None (no password set) never matches."""
    if len(password) > MAX_LENGTH:
        return False
    return await anyio.to_thread.run_sync(_verify, hashed, password)


def needs_rehash(hashed: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(hashed)
