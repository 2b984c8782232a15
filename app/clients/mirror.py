"""The mirror's names and listings: lookups by login or site-owner name, and when our partner
list was last read to its end. Functions take the caller's session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import mirror_repository as repository
from app.clients.models import Client, PartnerListing
from app.db import utcnow


async def listing_completed(
    session: AsyncSession, *, source: str, started_at: datetime, accounts: int
) -> PartnerListing:
    """Record that our whole partner list was read (it started at `started_at`) just now."""
    return await repository.add_listing(
        session,
        PartnerListing(
            source=source, started_at=started_at, completed_at=utcnow(), accounts=accounts
        ),
    )


async def last_complete_listing(session: AsyncSession) -> PartnerListing | None:
    """The newest complete read of our partner list, if there ever was one."""
    return await repository.last_listing(session)


async def find_by_name(session: AsyncSession, name: str, *, limit: int = 5) -> Sequence[Client]:
    """Clients whose login or site-owner name is exactly `name` (any case), best match first."""
    return await repository.by_name(session, name, limit=limit)


async def ids_by_names(session: AsyncSession, names: Sequence[str]) -> dict[str, str]:
    """For each lower-cased name a client is known by (login or site-owner name), its id."""
    return await repository.ids_by_names(session, names)
