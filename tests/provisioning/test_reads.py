"""The shared partner-list read: a killed reader is replaced and goes on from its page, a stale
reader's progress is refused, reads are spaced, and a read nobody waits for is dropped."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients.evidence import Membership
from app.kit.crypto import PasswordCipher
from app.provisioning import read_flow, reads
from app.provisioning.resources import ProvisioningResources
from app.sandbox.state import SandboxState
from app.settings import Settings
from app.worker.provisioning_jobs import sweep_once
from tests.conftest import Seed
from tests.provisioning.conftest import body_for, provisioning_settings, table_rows, unique_login
from tests.provisioning.test_outcomes import location_id

LIST_PATH = "/v3/partner/accounts"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return provisioning_settings(
        database_url, provision={"lease_seconds": 4.0, "reconcile_interval_seconds": 0.2}
    )


@pytest.fixture
def p(
    app: FastAPI, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> ProvisioningResources:
    return ProvisioningResources(
        settings=settings,
        sessionmaker=sessionmaker,
        ctct=app.state.resources.ctct,
        cipher=PasswordCipher(settings.provision.encryption_keys),
    )


def list_calls(state: SandboxState) -> int:
    return sum(1 for call in state.calls.calls(LIST_PATH, "GET") if call.path == LIST_PATH)


async def _waiting_request(api: httpx.AsyncClient, state: SandboxState) -> tuple[int, str]:
    """A request whose answer was lost after CTCT created the account."""
    state.add_fault("lost_response", "create", count=1)
    login = unique_login()
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text
    return location_id(accepted), login


async def _take(p: ProvisioningResources, *, lease: float = 4.0) -> reads.ReadClaim:
    async with p.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE partner_list_read SET requested_at = now() - interval '1 hour'")
        )
        claim = await reads.take(
            session, interval=timedelta(seconds=0.2), lease=timedelta(seconds=lease)
        )
    assert isinstance(claim, reads.ReadClaim)
    return claim


async def _lease_runs_out(p: ProvisioningResources) -> None:
    """What time does to a dead reader's lease, without waiting for it (a 10 ms lease had not
    always run out by the next statement, and the take-over then found the read still held)."""
    async with p.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE partner_list_read SET lease_expires_at = now() - interval '1 second' "
                "WHERE lease_expires_at IS NOT NULL"
            )
        )


async def test_a_reader_killed_mid_list_is_replaced_and_goes_on_from_its_page(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    p: ProvisioningResources,
    database_url: str,
) -> None:
    sandbox_state.seed_accounts(240, login_prefix="listed")  # with ours: 5 pages of 50
    request_id, _ = await _waiting_request(api, sandbox_state)
    stale = await _take(p)
    first = await p.ctct.list_accounts_page(limit=50)
    async with p.sessionmaker() as session, session.begin():
        saved = await reads.advance(
            session,
            stale,
            next_href=first.next_href,
            accounts=len(first.accounts),
            list_calls=1,
            lease=timedelta(seconds=4),
        )
    assert saved is not None
    # The reader dies here (kill -9): no release, its lease just runs out.
    await _lease_runs_out(p)
    before = list_calls(sandbox_state)

    await read_flow.run(p)

    assert list_calls(sandbox_state) - before == 4  # pages 2 to 5, not the whole list again
    assert table_rows(
        database_url, "SELECT state, pages_read, list_calls, fence FROM partner_list_read"
    ) == [("completed", 5, 5, 2)]
    assert table_rows(
        database_url, f"SELECT state FROM provisioning_request WHERE id = {request_id}"
    ) == [("succeeded",)]
    async with p.sessionmaker() as session, session.begin():
        late = await reads.advance(
            session, stale, next_href=None, accounts=0, list_calls=0, lease=timedelta(seconds=1)
        )
    assert late is None  # the replaced reader's token is stale


async def test_a_second_read_waits_out_the_interval_after_the_first_began(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO partner_list_read (state, requested_at, started_at, finished_at) "
                "VALUES ('completed', now() - interval '10 seconds', now() - interval '5 seconds',"
                " now())"
            )
        )
        await reads.request_read(session, since=await _now(session) - timedelta(seconds=1))
        await session.execute(
            text(
                "UPDATE partner_list_read SET requested_at = now() - interval '1 hour' "
                "WHERE state = 'queued'"
            )
        )
        # Somebody waits for it.
        await session.execute(
            text(
                "INSERT INTO provisioning_request (api_key_id, api_key_name, fingerprint, "
                "payload, login_name, state, attempts, may_exist, deadline_at, unknown_since) "
                "VALUES (1, 'k', 'f', '{}', 'someone', 'pending', 1, true, "
                "now() + interval '1 day', now() - interval '1 second')"
            )
        )
        step = await reads.take(
            session, interval=timedelta(seconds=60), lease=timedelta(seconds=10)
        )
        now = await _now(session)

    assert not isinstance(step, reads.ReadClaim)
    assert step is not None
    # 60 s after the previous read began (5 s ago), not before.
    assert timedelta(seconds=54) < step - now <= timedelta(seconds=55)


async def test_a_read_nobody_waits_for_is_dropped_and_costs_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await reads.request_read(session, since=await _now(session))
        await session.execute(
            text("UPDATE partner_list_read SET requested_at = now() - interval '1 hour'")
        )
        step = await reads.take(
            session, interval=timedelta(seconds=0.2), lease=timedelta(seconds=10)
        )
        rows = await session.execute(text("SELECT state, pages_read FROM partner_list_read"))
        assert step is None
        assert rows.all() == [("dropped", 0)]


async def test_the_sweep_gives_a_read_whose_job_is_gone_a_job(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    p: ProvisioningResources,
    database_url: str,
) -> None:
    await _waiting_request(api, sandbox_state)
    async with p.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed' WHERE queueing_lock = :lock"),
            {"lock": reads.RECONCILE_LOCK},
        )

    await sweep_once(p)

    assert table_rows(
        database_url,
        "SELECT count(*) FROM procrastinate_jobs "
        f"WHERE queueing_lock = '{reads.RECONCILE_LOCK}' AND status = 'todo'",
    ) == [(1,)]


async def test_a_read_refreshes_the_mirror_of_the_clients_it_lists_but_not_their_status(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    p: ProvisioningResources,
    seed: Seed,
    database_url: str,
) -> None:
    ours = sandbox_state.seed_account(login_name="mirror_ours", billing_status="Open")
    moved = sandbox_state.seed_account(login_name="mirror_moved", billing_status="Canceled")
    await seed(ours.encoded_account_id, Membership.OURS, billing_status="Trial")
    await seed(moved.encoded_account_id, Membership.OTHER_PARTNER, billing_status="Trial")
    await _waiting_request(api, sandbox_state)
    await _take(p)
    await _lease_runs_out(p)  # due now; the reader below takes it over

    await read_flow.run(p)

    rows = table_rows(
        database_url,
        "SELECT site_owner_name, billing_status, status FROM client "
        f"WHERE encoded_account_id IN ('{ours.encoded_account_id}', "
        f"'{moved.encoded_account_id}') ORDER BY site_owner_name",
    )
    assert rows == [
        ("mirror_moved", "Canceled", "other_partner"),
        ("mirror_ours", "Open", "approved"),
    ]


async def _now(session: AsyncSession) -> datetime:
    now: datetime = (await session.execute(text("SELECT now()"))).scalar_one()
    return now
