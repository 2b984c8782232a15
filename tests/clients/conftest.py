"""Fixtures for the clients API tests: keys per role and a way to seed clients directly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from tests.conftest import ApiKeyFactory

Headers = dict[str, str]


@pytest.fixture
async def reader(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ, name='reader')}"}


@pytest.fixture
async def decider(api_key: ApiKeyFactory) -> Headers:
    key = await api_key(Scope.CLIENTS_DECIDE, Scope.CLIENTS_READ, name="ops-alice")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def registrar(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_REGISTER, name='product')}"}


Seed = Callable[..., Awaitable[None]]


@pytest.fixture
def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> Seed:
    """Record one observation about an account, as an audit would."""

    async def observe(account_id: str, membership: Membership, **attributes: str) -> None:
        async with sessionmaker() as session, session.begin():
            await clients_service.record_evidence(
                session,
                account_id,
                Evidence(
                    membership,
                    VerifiedVia.PARTNER_LIST,
                    f"seed_{membership.value}",
                    MirroredAttributes(**attributes),
                ),
                clients_service.Actor(EventSource.AUDIT, name="seed"),
            )

    return observe
