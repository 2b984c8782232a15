"""Transfer requests complete themselves when the account shows up in our partner list."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import AuditTrigger
from app.audit.runner import run_once
from app.clients import transfers
from app.clients.evidence import Membership
from app.clients.models import EventSource, TransferRequestEvent, TransferState
from app.clients.service import Actor
from app.ctct.client import build_ctct_client
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import Seed

Sessions = async_sessionmaker[AsyncSession]
PERSON = Actor(EventSource.PERSON, name="ops-alice")
AUDIT = Actor(EventSource.AUDIT, name=None, audit_run_id=None)


async def test_open_requests_complete_and_closed_ones_stay(
    sessionmaker: Sessions, seed: Seed
) -> None:
    await seed("acct-1", Membership.NO_PARTNER)
    async with sessionmaker() as session, session.begin():
        old = await transfers.file_transfer_request(session, "acct-1", note="a", actor=PERSON)
        await transfers.change_transfer_request(
            session, old.id, TransferState.WITHDRAWN, note=None, actor=PERSON
        )
        current = await transfers.file_transfer_request(session, "acct-1", note="b", actor=PERSON)
        await transfers.change_transfer_request(
            session, current.id, TransferState.SUBMITTED, note=None, actor=PERSON
        )

    async with sessionmaker() as session, session.begin():
        completed = await transfers.complete_transfer_requests_for(session, "acct-1", AUDIT)
        nothing = await transfers.complete_transfer_requests_for(session, "unknown", AUDIT)

    assert [request.id for request in completed] == [current.id]
    assert nothing == []
    async with sessionmaker() as session:
        history = (
            await session.execute(
                select(TransferRequestEvent).order_by(TransferRequestEvent.id.desc()).limit(1)
            )
        ).scalar_one()
    assert (history.from_state, history.to_state, history.source) == (
        "submitted",
        "completed",
        "audit",
    )


async def test_an_audit_that_finds_the_account_completes_the_request_and_approves_it(
    sessionmaker: Sessions,
    engine: AsyncEngine,
    sandboxed_settings: Settings,
    sandbox: SandboxState,
    seed: Seed,
) -> None:
    account = sandbox.seed_account(partner="none")
    await seed(account.encoded_account_id, Membership.NO_PARTNER)
    async with sessionmaker() as session, session.begin():
        request = await transfers.file_transfer_request(
            session, account.encoded_account_id, note="owner asked", actor=PERSON
        )
    sandbox.move(account.encoded_account_id, "ours")

    async with build_ctct_client(
        sandboxed_settings.ctct,
        engine=engine,
        transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
    ) as ctct:
        run = await run_once(sessionmaker, sandboxed_settings, ctct, trigger=AuditTrigger.CLI)

    assert run is not None
    async with sessionmaker() as session:
        found = await transfers.repository.transfer_by_id(session, request.id)
        client = await transfers.repository.by_account_id(session, account.encoded_account_id)
    assert found is not None
    assert found[0].state == "completed"
    assert client is not None
    assert client.status == "approved"
