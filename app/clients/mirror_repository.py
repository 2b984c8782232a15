"""SQL for the mirror's names and our complete listings of the partner list."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import Client, PartnerListing
from app.clients.repository import named


async def by_name(session: AsyncSession, name: str, *, limit: int) -> Sequence[Client]:
    """Clients whose login or site-owner name is `name` (any case): login matches first, then
    the most recently verified."""
    statement = (
        select(Client)
        .where(named(name))
        .order_by(
            (func.lower(Client.login_name) == func.lower(literal(name))).desc().nulls_last(),
            Client.verified_at.desc().nulls_last(),
            Client.id,
        )
        .limit(limit)
    )
    return (await session.execute(statement)).scalars().all()


async def ids_by_names(session: AsyncSession, names: Sequence[str]) -> dict[str, str]:
    """Lower-cased name -> encoded_account_id for the clients known by one of `names` (already
    lower-cased): a login-name match wins over a site-owner match, then the latest verified."""
    if not names:
        return {}
    login, owner = func.lower(Client.login_name), func.lower(Client.site_owner_name)
    statement = (
        select(login, owner, Client.encoded_account_id)
        .where(or_(login.in_(list(names)), owner.in_(list(names))))
        .order_by(Client.verified_at.desc().nulls_last(), Client.id)
    )
    by_login: dict[str, str] = {}
    by_owner: dict[str, str] = {}
    for login_name, owner_name, account_id in (await session.execute(statement)).all():
        if login_name is not None:
            by_login.setdefault(login_name, account_id)
        if owner_name is not None:
            by_owner.setdefault(owner_name, account_id)
    wanted = set(names)
    return {
        name: by_login.get(name) or by_owner[name]
        for name in wanted
        if name in by_login or name in by_owner
    }


async def add_listing(session: AsyncSession, listing: PartnerListing) -> PartnerListing:
    session.add(listing)
    await session.flush()
    return listing


async def last_listing(session: AsyncSession) -> PartnerListing | None:
    statement = select(PartnerListing).order_by(PartnerListing.completed_at.desc()).limit(1)
    return (await session.execute(statement)).scalar_one_or_none()
