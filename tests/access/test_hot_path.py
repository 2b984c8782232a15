"""The access check's hot path: a plain endpoint ahead of FastAPI's routes that keeps every
promise (documented, request id, metrics), and cache fills without stampedes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.evidence import Membership
from app.clients.models import ClientStatus
from tests.access.conftest import SeedClient, record
from tests.kit.polling import poll_until

ACCESS_PATH = "/v1/access/{encoded_account_id}"


async def _trusted(app: FastAPI) -> None:
    cache = app.state.resources.access.cache
    await poll_until(lambda: asyncio.sleep(0, cache.trusted), bool, timeout=10)
    # Keep a loaded test machine's slow heartbeat from lapsing the trust mid-test.
    cache.trust_until(time.monotonic() + 60)


def test_the_hot_paths_are_routed_before_every_fastapi_route(app: FastAPI) -> None:
    paths = [getattr(route, "path", None) for route in app.router.routes]

    assert paths[:2] == [ACCESS_PATH, "/healthz"]


async def test_the_access_check_is_documented_in_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    operation = spec["paths"][ACCESS_PATH]["get"]
    assert operation["security"] == [{"HTTPBearer": ["access:check"]}]
    assert {p["name"] for p in operation["parameters"]} == {"encoded_account_id", "consistency"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/AccessDecision")
    assert "get" in spec["paths"]["/healthz"]


async def test_a_hot_answer_carries_a_request_id_and_is_counted(
    client: httpx.AsyncClient, checker: dict[str, str], seed_client: SeedClient
) -> None:
    account_id = await seed_client("acct-hot", ClientStatus.APPROVED)

    echoed = await client.get(
        f"/v1/access/{account_id}", headers={**checker, "X-Request-ID": "req-hot-1"}
    )
    generated = await client.get(f"/v1/access/{account_id}", headers=checker)
    metrics = (await client.get("/metrics")).text

    assert echoed.status_code == 200
    assert echoed.headers["content-type"] == "application/json"
    assert echoed.headers["x-request-id"] == "req-hot-1"
    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.json() == generated.json()
    assert (
        'partnergate_http_requests_total{method="GET",route="/v1/access/{encoded_account_id}",'
        'status="200"}' in metrics
    )
    assert 'partnergate_access_decisions_total{allowed="true",status="approved"}' in metrics


async def test_a_wrong_method_on_the_hot_path_is_the_usual_405_problem(
    client: httpx.AsyncClient, checker: dict[str, str]
) -> None:
    response = await client.delete("/v1/access/acct-1", headers=checker)

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "GET"


async def test_200_checks_of_an_uncached_client_read_the_store_once(
    app: FastAPI, client: httpx.AsyncClient, checker: dict[str, str], seed_client: SeedClient
) -> None:
    account_id = await seed_client("acct-cold", ClientStatus.APPROVED)
    warm = await seed_client("acct-warm", ClientStatus.APPROVED)
    await _trusted(app)
    await client.get(f"/v1/access/{warm}", headers=checker)  # memoizes the key
    reads: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM client" in statement:
            reads.append(statement)

    engine = app.state.resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        responses = await asyncio.gather(
            *(client.get(f"/v1/access/{account_id}", headers=checker) for _ in range(200))
        )
    finally:
        event.remove(engine, "before_cursor_execute", note)

    assert {r.json()["allowed"] for r in responses} == {True}
    assert len(reads) == 1


async def test_a_changed_client_is_read_again_behind_before_anyone_asks(
    app: FastAPI,
    client: httpx.AsyncClient,
    checker: dict[str, str],
    seed_client: SeedClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await seed_client("acct-refill", ClientStatus.OTHER_PARTNER)
    await _trusted(app)
    assert (await client.get(f"/v1/access/{account_id}", headers=checker)).json()[
        "allowed"
    ] is False
    cache = app.state.resources.access.cache

    async with sessionmaker() as session, session.begin():
        await record(session, account_id, Membership.OURS)

    def refilled_status() -> str | None:
        snapshot = cache.get(account_id)
        return None if snapshot is None else str(snapshot.status)

    await poll_until(
        lambda: asyncio.sleep(0, refilled_status()), lambda s: s == "approved", timeout=5
    )
