"""`/v1/audits` and `partnergate audit run`: start, watch, resolve held demotions, access after."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import runner as audit_runner
from app.audit.models import AuditState, AuditTrigger
from app.auth.scopes import Scope
from app.clients.models import ClientStatus
from app.ctct.client import build_ctct_client
from app.migrate import PROJECT_ROOT
from app.sandbox.app import create_sandbox_app
from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.audit.conftest import Auditor, put_clients, statuses
from tests.conftest import ApiKeyFactory
from tests.kit.paging import walk
from tests.kit.polling import poll_until


async def test_post_queues_a_run_for_the_worker_and_a_second_one_conflicts(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    auditor.sandbox.seed_accounts(120, partner="ours")
    runner = {"Authorization": f"Bearer {await api_key(Scope.AUDITS_RUN, name='ops')}"}
    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}

    started = await client.post("/v1/audits", headers=runner)
    again = await client.post("/v1/audits", headers=runner)

    assert started.status_code == 202
    run_id = started.json()["id"]
    assert started.headers["location"] == f"/v1/audits/{run_id}"
    assert started.json()["state"] == "queued"
    assert started.json()["requested_by"] == "ops"
    assert again.status_code == 409
    assert again.json()["type"].endswith("/audit-in-progress")
    assert again.headers["location"] == f"/v1/audits/{run_id}"
    assert (await client.post("/v1/audits", headers=reader)).status_code == 403

    # What the worker's job does with the queued run:
    transport = httpx.ASGITransport(app=create_sandbox_app(auditor.sandbox))
    async with build_ctct_client(settings.ctct, engine=engine, transport=transport) as ctct:
        done = await audit_runner.run_once(
            sessionmaker, settings, ctct, trigger=AuditTrigger.API, run_id=run_id
        )
    assert done is not None
    assert done.state == AuditState.COMPLETED

    body = (await client.get(f"/v1/audits/{run_id}", headers=reader)).json()
    assert (body["state"], body["pages_read"], body["clients_added"]) == ("completed", 3, 120)
    assert (body["list_calls"], body["token_calls"], body["ctct_calls"]) == (3, 1, 4)
    listed = (await client.get("/v1/audits", headers=reader)).json()
    assert [item["id"] for item in listed["items"]] == [run_id]
    assert (await client.get("/v1/audits/999", headers=reader)).status_code == 404


async def test_held_demotions_are_applied_when_a_person_confirms_them(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    listed = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(30, partner="ours")]
    gone = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(20, partner="other")]
    await put_clients(sessionmaker, listed + gone, ClientStatus.APPROVED)
    run = await auditor.run()
    assert (run.state, run.held_demotions) == (AuditState.HELD, 20)
    runner = {"Authorization": f"Bearer {await api_key(Scope.AUDITS_RUN, name='ops')}"}
    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}

    detail = (await client.get(f"/v1/audits/{run.id}", headers=reader)).json()
    assert sorted(row["encoded_account_id"] for row in detail["held"]["items"]) == sorted(gone)
    assert (
        await client.post(f"/v1/audits/{run.id}/confirm-demotions", headers=reader)
    ).status_code == 403
    confirmed = await client.post(f"/v1/audits/{run.id}/confirm-demotions", headers=runner)

    assert confirmed.status_code == 200
    body = confirmed.json()
    assert (body["state"], body["held_resolution"], body["demotions"]) == (
        "completed",
        "confirmed",
        20,
    )
    after = await statuses(sessionmaker)
    assert {after[account] for account in gone} == {"other_partner"}
    assert {after[account] for account in listed} == {"approved"}
    again = await client.post(f"/v1/audits/{run.id}/confirm-demotions", headers=runner)
    assert again.status_code == 409


@pytest.mark.parametrize(("limit", "pages"), [(5, 4), (6, 4), (500, 1)])
async def test_held_demotions_walk_to_their_end_without_duplicates_or_an_empty_page(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    sessionmaker: async_sessionmaker[AsyncSession],
    limit: int,
    pages: int,
) -> None:
    listed = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(30, partner="ours")]
    gone = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(20, partner="other")]
    await put_clients(sessionmaker, listed + gone, ClientStatus.APPROVED)
    run = await auditor.run()
    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}

    walked = await walk(
        client,
        f"/v1/audits/{run.id}",
        headers=reader,
        params={"limit": limit},
        page_of=lambda body: body["held"],
    )

    rows = [row for page in walked for row in page]
    assert len(walked) == pages
    assert [row["client_id"] for row in rows] == sorted({row["client_id"] for row in rows})
    assert sorted(row["encoded_account_id"] for row in rows) == sorted(gone)
    first = (await client.get(f"/v1/audits/{run.id}?limit=1", headers=reader)).json()
    foreign = await client.get(
        "/v1/audits", params={"cursor": first["held"]["next_cursor"]}, headers=reader
    )
    assert foreign.status_code == 400
    assert {error["field"] for error in foreign.json()["errors"]} == {"cursor"}


@pytest.mark.parametrize(("runs", "limit", "pages"), [(4, 2, 2), (5, 2, 3)])
async def test_the_audit_list_walks_to_its_end_without_duplicates_or_an_empty_page(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    runs: int,
    limit: int,
    pages: int,
) -> None:
    done = [(await auditor.run()).id for _ in range(runs)]
    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}

    walked = await walk(client, "/v1/audits", headers=reader, params={"limit": limit})
    completed = await walk(
        client, "/v1/audits", headers=reader, params={"limit": limit, "state": "completed"}
    )
    held = await walk(client, "/v1/audits", headers=reader, params={"state": "held"})

    assert len(walked) == len(completed) == pages
    assert [run["id"] for page in walked for run in page] == sorted(done, reverse=True)
    assert [run["id"] for page in completed for run in page] == sorted(done, reverse=True)
    assert held == [[]]


async def test_rejected_held_demotions_change_nobody(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    gone = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(5, partner="other")]
    await put_clients(sessionmaker, gone, ClientStatus.APPROVED)
    run = await auditor.run()
    runner = {"Authorization": f"Bearer {await api_key(Scope.AUDITS_RUN)}"}

    rejected = await client.post(f"/v1/audits/{run.id}/reject-demotions", headers=runner)

    assert rejected.json()["held_resolution"] == "rejected"
    assert set((await statuses(sessionmaker)).values()) == {"approved"}


async def test_an_account_moved_to_another_partner_is_denied_after_the_audit(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    auditor: Auditor,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ours = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(100, partner="ours")]
    await put_clients(sessionmaker, ours, ClientStatus.APPROVED)
    moving = ours[42]
    checker = {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}
    before = (await client.get(f"/v1/access/{moving}", headers=checker)).json()
    assert before["allowed"] is True

    auditor.sandbox.move(moving, "other")
    run = await auditor.run()

    assert (run.state, run.demotions) == (AuditState.COMPLETED, 1)

    async def decision() -> dict[str, object]:
        response = await client.get(f"/v1/access/{moving}", headers=checker)
        body: dict[str, object] = response.json()
        return body

    after = await poll_until(decision, lambda body: body["allowed"] is False, timeout=5.0)
    assert after["status"] == "other_partner"


def test_cli_audit_run_prints_the_summary(database_url: str) -> None:
    # Development, as an operator's `make run` machine: the sandbox's published credentials.
    sandbox = SandboxState(rate_per_second=100_000)
    sandbox.seed_accounts(60, partner="ours")
    with running_sandbox(sandbox) as base:
        env = {
            **os.environ,
            "ENVIRONMENT": "development",
            "DATABASE_URL": database_url,
            "CTCT_BASE_URL": f"{base}/v3",
            "CTCT_TOKEN_URL": f"{base}/oauth2/token",
            "CTCT_RATE_PER_SECOND": "1000",
            "CTCT_INTERACTIVE_RESERVE": "0",
        }
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "audit", "run"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "audit run 1: completed" in result.stdout
    assert "CTCT calls 3 (2 list, 1 token)" in result.stdout
    assert "added 60" in result.stdout
