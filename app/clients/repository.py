"""SQL for clients and status events."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import Client, StatusEvent

STATUS_CHANNEL = "client_status"


async def by_account_id(
    session: AsyncSession, encoded_account_id: str, *, for_update: bool = False
) -> Client | None:
    statement = select(Client).where(Client.encoded_account_id == encoded_account_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def add(session: AsyncSession, client: Client) -> Client:
    session.add(client)
    await session.flush()
    return client


async def add_event(session: AsyncSession, event: StatusEvent) -> StatusEvent:
    session.add(event)
    await session.flush()
    return event


async def events_of(session: AsyncSession, client_id: int) -> Sequence[StatusEvent]:
    statement = (
        select(StatusEvent).where(StatusEvent.client_id == client_id).order_by(StatusEvent.id)
    )
    return (await session.execute(statement)).scalars().all()


async def notify_status_changed(session: AsyncSession, encoded_account_id: str) -> None:
    """Tell every replica (on commit) that this client's answer changed."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": STATUS_CHANNEL, "payload": encoded_account_id},
    )
