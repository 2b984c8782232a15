"""Every status row's decision through the API, the response shape, and the cache."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access.cache import DecisionCache, Snapshot
from app.clients.models import ClientStatus
from tests.access.conftest import AppFactory, SeedClient, record
from tests.kit.polling import poll_until

DENY_TABLE = [
    (ClientStatus.APPROVED, True, "approved"),
    (ClientStatus.BILLING_APPROVED, True, "billing_approved"),
    (ClientStatus.OTHER_PARTNER, False, "other_partner"),
    (ClientStatus.UNAFFILIATED, False, "unaffiliated"),
    (ClientStatus.UNVERIFIED, False, "unverified"),
]


@pytest.mark.parametrize(("status", "allowed", "reason"), DENY_TABLE)
async def test_each_status_is_decided_by_the_table(
    client: httpx.AsyncClient,
    checker: dict[str, str],
    seed_client: SeedClient,
    status: ClientStatus,
    allowed: bool,
    reason: str,
) -> None:
    account_id = await seed_client(f"acct-{status.value}", status)

    response = await client.get(f"/v1/access/{account_id}", headers=checker)

    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == account_id
    assert body["status"] == status.value
    assert body["allowed"] is allowed
    assert body["reason"] == reason
    if status is ClientStatus.UNVERIFIED:
        assert body["verified_at"] is None
        assert body["stale"] is True
    else:
        assert body["verified_at"] is not None
        assert body["stale"] is False


@pytest.mark.parametrize(
    ("setting", "allowed", "reason"),
    [("deny", False, "unaffiliated"), ("allow", True, "unaffiliated_allowed")],
)
async def test_unaffiliated_follows_the_unaffiliated_access_setting(
    make_app: AppFactory,
    checker: dict[str, str],
    seed_client: SeedClient,
    setting: str,
    allowed: bool,
    reason: str,
) -> None:
    app = await make_app(unaffiliated_access=setting)
    account_id = await seed_client("acct-unaffiliated", ClientStatus.UNAFFILIATED)
    async with _http(app) as http:
        body = (await http.get(f"/v1/access/{account_id}", headers=checker)).json()
    assert (body["allowed"], body["reason"]) == (allowed, reason)


async def test_a_cached_answer_does_no_database_round_trip(
    app: FastAPI, client: httpx.AsyncClient, checker: dict[str, str], seed_client: SeedClient
) -> None:
    account_id = await seed_client("acct-hot", ClientStatus.APPROVED)
    await poll_until(lambda: _trusted(app), bool, timeout=5)
    # The listener is up; keep a loaded test machine's slow heartbeat from lapsing the trust.
    app.state.resources.access.cache.trust_until(time.monotonic() + 60)
    await client.get(f"/v1/access/{account_id}", headers=checker)  # fills the cache (and keys)
    statements: list[str] = []
    engine = app.state.resources.engine.sync_engine

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            response = await client.get(f"/v1/access/{account_id}", headers=checker)
            assert response.json()["allowed"] is True
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


async def test_a_status_change_reaches_the_cached_answer_within_a_second(
    app: FastAPI,
    client: httpx.AsyncClient,
    checker: dict[str, str],
    seed_client: SeedClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await seed_client("acct-changes", ClientStatus.OTHER_PARTNER)
    await poll_until(lambda: _trusted(app), bool, timeout=5)
    assert (await client.get(f"/v1/access/{account_id}", headers=checker)).json()[
        "allowed"
    ] is False
    assert account_id in app.state.resources.access.cache._entries

    async with sessionmaker() as session, session.begin():
        await record(session, account_id, _ours())

    async def allowed() -> bool:
        response = await client.get(f"/v1/access/{account_id}", headers=checker)
        return bool(response.json()["allowed"])

    await poll_until(allowed, bool, timeout=10.0, interval=0.02)


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = DecisionCache(3)
    cache.trust_until(float("inf"))
    for number in range(5):
        cache.put(f"acct-{number}", Snapshot.of("approved", None), cache.generation)
        cache.get("acct-0")  # keeps acct-0 recently used

    assert list(cache._entries) == ["acct-3", "acct-4", "acct-0"]


async def test_a_stale_client_is_answered_from_the_store_and_marked_stale(
    client: httpx.AsyncClient, checker: dict[str, str], seed_client: SeedClient
) -> None:
    account_id = await seed_client("acct-stale", ClientStatus.OTHER_PARTNER, age=timedelta(days=2))
    body = (await client.get(f"/v1/access/{account_id}", headers=checker)).json()
    assert (body["status"], body["allowed"], body["stale"]) == ("other_partner", False, True)


async def test_batch_answers_each_id_in_order_with_duplicates(
    client: httpx.AsyncClient, checker: dict[str, str], seed_client: SeedClient
) -> None:
    ours = await seed_client("acct-ours", ClientStatus.APPROVED)
    theirs = await seed_client("acct-theirs", ClientStatus.OTHER_PARTNER)

    response = await client.post(
        "/v1/access:batch", json={"account_ids": [ours, theirs, ours]}, headers=checker
    )

    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [(d["account_id"], d["allowed"]) for d in decisions] == [
        (ours, True),
        (theirs, False),
        (ours, True),
    ]


async def _trusted(app: FastAPI) -> bool:
    return bool(app.state.resources.access.cache.trusted)


def _http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://partnergate.test"
    )


def _ours() -> object:
    from app.clients.evidence import Membership

    return Membership.OURS
