"""SQL for people."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.people.models import Person


async def add(session: AsyncSession, person: Person) -> Person:
    session.add(person)
    await session.flush()
    return person


async def by_email(session: AsyncSession, email: str) -> Person | None:
    statement = select(Person).where(Person.email == email)
    return (await session.execute(statement)).scalar_one_or_none()


async def everyone(session: AsyncSession) -> Sequence[Person]:
    return (await session.execute(select(Person).order_by(Person.email))).scalars().all()
