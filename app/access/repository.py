"""The reads the access check makes: one row, or many rows in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clients.models import Client

_client: Table = Client.__table__  # type: ignore[assignment]

# A lock namespace for "someone is probing this client"; the second key is hashtext(id).
PROBE_LOCK_NAMESPACE = 0x5A0C


async def status_of(conn: AsyncConnection, account_id: str) -> tuple[str, datetime | None] | None:
    """(status, verified_at) of one client, or None when unknown."""
    statement = select(_client.c.status, _client.c.verified_at).where(
        _client.c.encoded_account_id == account_id
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else (row[0], row[1])


async def statuses_of(
    conn: AsyncConnection, account_ids: Sequence[str]
) -> dict[str, tuple[str, datetime | None]]:
    """(status, verified_at) by id for the known ones among `account_ids`, in one query."""
    statement = select(_client.c.encoded_account_id, _client.c.status, _client.c.verified_at).where(
        _client.c.encoded_account_id.in_(account_ids)
    )
    return {row[0]: (row[1], row[2]) for row in await conn.execute(statement)}


async def try_claim_probe(conn: AsyncConnection, account_id: str) -> bool:
    """Take the session-level advisory lock that says "this process is probing this client"."""
    claimed = await conn.scalar(
        text("SELECT pg_try_advisory_lock(:ns, hashtext(:account_id))"),
        {"ns": PROBE_LOCK_NAMESPACE, "account_id": account_id},
    )
    return bool(claimed)


async def release_probe(conn: AsyncConnection, account_id: str) -> None:
    """Release the lock taken by `try_claim_probe` on the same connection."""
    await conn.execute(
        text("SELECT pg_advisory_unlock(:ns, hashtext(:account_id))"),
        {"ns": PROBE_LOCK_NAMESPACE, "account_id": account_id},
    )
