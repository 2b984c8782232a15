"""What the access check asks CTCT, and when: unknown ids, `fresh`, stale clients, outages."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI

from app.clients.models import ClientStatus
from app.sandbox.state import SandboxState
from tests.access.conftest import SeedClient
from tests.kit.polling import poll_until


def plan_calls(sandbox: SandboxState, account_id: str) -> int:
    return len(sandbox.calls.calls(f"/v3/partner/accounts/{account_id}/plan"))


async def check(
    http: httpx.AsyncClient, headers: dict[str, str], account_id: str
) -> dict[str, object]:
    response = await http.get(f"/v1/access/{account_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_an_unknown_account_of_ours_is_probed_once_and_allowed(
    client: httpx.AsyncClient, checker: dict[str, str], sandbox: SandboxState
) -> None:
    account_id = sandbox.seed_account(partner="ours").encoded_account_id

    first, *others = await asyncio.gather(*(check(client, checker, account_id) for _ in range(20)))

    assert (first["status"], first["allowed"], first["stale"]) == ("approved", True, False)
    assert all(other["allowed"] is True for other in others)
    assert plan_calls(sandbox, account_id) == 1
    assert (await check(client, checker, account_id))["allowed"] is True
    assert plan_calls(sandbox, account_id) == 1


async def test_an_unknown_account_of_another_partner_is_denied(
    client: httpx.AsyncClient, checker: dict[str, str], sandbox: SandboxState
) -> None:
    account_id = sandbox.seed_account(partner="other").encoded_account_id

    body = await check(client, checker, account_id)

    assert (body["status"], body["allowed"]) == ("other_partner", False)


async def test_ctct_down_known_client_from_store_unknown_unverified_until_ctct_returns(
    client: httpx.AsyncClient,
    checker: dict[str, str],
    sandbox: SandboxState,
    seed_client: SeedClient,
) -> None:
    known = await seed_client("acct-known", ClientStatus.APPROVED)
    unknown = sandbox.seed_account(partner="ours").encoded_account_id
    sandbox.add_fault("unavailable", "all")

    assert (await check(client, checker, known))["allowed"] is True
    body = await check(client, checker, unknown)
    assert (body["status"], body["allowed"], body["reason"]) == ("unverified", False, "unverified")
    assert plan_calls(sandbox, known) == 0

    sandbox.clear_faults()

    async def allowed() -> dict[str, object]:
        return await check(client, checker, unknown)

    body = await poll_until(allowed, lambda b: b["allowed"] is True, timeout=5)
    assert (body["status"], body["stale"]) == ("approved", False)


async def test_fresh_asks_ctct_first(
    client: httpx.AsyncClient, checker: dict[str, str], sandbox: SandboxState
) -> None:
    account_id = sandbox.seed_account(partner="ours").encoded_account_id
    assert (await check(client, checker, account_id))["allowed"] is True
    sandbox.move(account_id, "other")

    cached = await check(client, checker, account_id)
    fresh = await client.get(f"/v1/access/{account_id}?consistency=fresh", headers=checker)

    assert cached["allowed"] is True
    assert (fresh.json()["status"], fresh.json()["allowed"]) == ("other_partner", False)


async def test_fresh_when_ctct_cannot_answer_says_so_and_answers_from_the_store(
    client: httpx.AsyncClient,
    checker: dict[str, str],
    sandbox: SandboxState,
    seed_client: SeedClient,
) -> None:
    account_id = await seed_client("acct-fresh-down", ClientStatus.APPROVED)
    sandbox.add_fault("unavailable", "all")

    response = await client.get(f"/v1/access/{account_id}?consistency=fresh", headers=checker)

    body = response.json()
    assert (body["status"], body["allowed"], body["reason"]) == (
        "approved",
        True,
        "ctct_unavailable",
    )


async def test_500_concurrent_checks_on_a_stale_client_cause_one_probe(
    app: FastAPI,
    client: httpx.AsyncClient,
    checker: dict[str, str],
    sandbox: SandboxState,
    seed_client: SeedClient,
) -> None:
    account_id = sandbox.seed_account(partner="ours").encoded_account_id
    await seed_client(account_id, ClientStatus.APPROVED, age=timedelta(days=2))
    sandbox.calls.clear()

    answers = await asyncio.gather(*(check(client, checker, account_id) for _ in range(500)))

    assert all(answer["allowed"] is True for answer in answers)
    assert any(answer["stale"] is True for answer in answers)

    async def settled() -> dict[str, object]:
        return await check(client, checker, account_id)

    await poll_until(settled, lambda b: b["stale"] is False, timeout=5)
    assert plan_calls(sandbox, account_id) == 1


async def test_a_stale_client_probed_by_another_replica_is_not_probed_again(
    app: FastAPI,
    client: httpx.AsyncClient,
    checker: dict[str, str],
    sandbox: SandboxState,
    seed_client: SeedClient,
    database_url: str,
) -> None:
    from sqlalchemy import text

    from app.access.repository import PROBE_LOCK_NAMESPACE
    from app.db import create_engine

    account_id = sandbox.seed_account(partner="ours").encoded_account_id
    await seed_client(account_id, ClientStatus.APPROVED, age=timedelta(days=2))
    sandbox.calls.clear()
    other_replica = create_engine(database_url)
    try:
        async with other_replica.connect() as conn:
            await conn.execute(
                text("SELECT pg_advisory_lock(:ns, hashtext(:id))"),
                {"ns": PROBE_LOCK_NAMESPACE, "id": account_id},
            )
            body = await check(client, checker, account_id)
            assert body["stale"] is True
            service = app.state.resources.access
            await poll_until(
                lambda: asyncio.sleep(0, result=len(service._inflight)), lambda n: n == 0
            )
            await conn.execute(
                text("SELECT pg_advisory_unlock(:ns, hashtext(:id))"),
                {"ns": PROBE_LOCK_NAMESPACE, "id": account_id},
            )
    finally:
        await other_replica.dispose()
    assert plan_calls(sandbox, account_id) == 0


async def test_batch_probes_unknown_ids_within_the_time_budget(
    client: httpx.AsyncClient,
    checker: dict[str, str],
    sandbox: SandboxState,
    seed_client: SeedClient,
) -> None:
    known = await seed_client("acct-batch-known", ClientStatus.OTHER_PARTNER)
    ours = sandbox.seed_account(partner="ours").encoded_account_id

    response = await client.post(
        "/v1/access:batch", json={"account_ids": [known, ours, ours]}, headers=checker
    )

    decisions = response.json()["decisions"]
    assert [(d["status"], d["allowed"]) for d in decisions] == [
        ("other_partner", False),
        ("approved", True),
        ("approved", True),
    ]
    assert plan_calls(sandbox, ours) == 1


async def test_batch_answers_unverified_when_ctct_is_down(
    client: httpx.AsyncClient, checker: dict[str, str], sandbox: SandboxState
) -> None:
    ours = sandbox.seed_account(partner="ours").encoded_account_id
    sandbox.add_fault("unavailable", "all")

    response = await client.post("/v1/access:batch", json={"account_ids": [ours]}, headers=checker)

    [decision] = response.json()["decisions"]
    assert (decision["status"], decision["allowed"], decision["reason"]) == (
        "unverified",
        False,
        "unverified",
    )
