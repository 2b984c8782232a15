"""SQL for API keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiKey


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def by_name(session: AsyncSession, name: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.name == name))
    return result.scalar_one_or_none()


async def by_secret_hash(session: AsyncSession, secret_hash: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.secret_hash == secret_hash))
    return result.scalar_one_or_none()


async def all_keys(session: AsyncSession) -> Sequence[ApiKey]:
    result = await session.execute(select(ApiKey).order_by(ApiKey.id))
    return result.scalars().all()


async def touch_many(session: AsyncSession, used_at: Mapping[int, datetime]) -> None:
    """Set `last_used_at` of many keys in one statement (executemany by primary key)."""
    await session.execute(
        update(ApiKey), [{"id": key_id, "last_used_at": at} for key_id, at in used_at.items()]
    )
