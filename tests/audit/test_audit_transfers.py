"""The audit completes a transfer request once its account appears in our partner list."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditState
from app.clients import service as clients_service
from app.clients import transfers
from app.clients.evidence import Evidence, Membership
from app.clients.models import ClientStatus, EventSource, TransferState, VerifiedVia
from tests.audit.conftest import Auditor, put_clients, statuses

PERSON = clients_service.Actor(EventSource.PERSON, name="dashboard")


async def file_request(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: str, *, submit: bool
) -> int:
    async with sessionmaker() as session, session.begin():
        request = await transfers.file_transfer_request(
            session, account_id, note="please move it to us", actor=PERSON
        )
        if submit:
            await transfers.change_transfer_request(
                session, request.id, TransferState.SUBMITTED, note="sent to CTCT", actor=PERSON
            )
        return request.id


async def transfer_history(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: int
) -> tuple[str, list[tuple[str | None, str, str, int | None]]]:
    async with sessionmaker() as session:
        state = (
            await session.execute(
                text("SELECT state FROM transfer_request WHERE id = :id"), {"id": request_id}
            )
        ).scalar_one()
        rows = await session.execute(
            text(
                "SELECT from_state, to_state, source, audit_run_id FROM transfer_request_event "
                "WHERE transfer_request_id = :id ORDER BY id"
            ),
            {"id": request_id},
        )
        return state, [(row[0], row[1], row[2], row[3]) for row in rows]


async def test_a_transfer_request_completes_and_its_client_is_approved_when_it_joins_our_list(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    requested, submitted, person_approved, still_away = (
        a.encoded_account_id for a in auditor.sandbox.seed_accounts(4, partner="none")
    )
    await put_clients(sessionmaker, [requested, submitted, still_away], ClientStatus.UNAFFILIATED)
    await put_clients(
        sessionmaker,
        [person_approved],
        ClientStatus.BILLING_APPROVED,
        evidence_status=ClientStatus.UNAFFILIATED,
    )
    ids = {
        requested: await file_request(sessionmaker, requested, submit=False),
        submitted: await file_request(sessionmaker, submitted, submit=True),
        person_approved: await file_request(sessionmaker, person_approved, submit=True),
        still_away: await file_request(sessionmaker, still_away, submit=True),
    }
    for account in (requested, submitted, person_approved):
        auditor.sandbox.move(account, "ours")

    run = await auditor.run()

    assert run.state == AuditState.COMPLETED
    after = await statuses(sessionmaker)
    assert {account: after[account] for account in (requested, submitted, person_approved)} == {
        requested: "approved",
        submitted: "approved",
        person_approved: "approved",
    }
    assert after[still_away] == "unaffiliated"
    for account in (requested, submitted, person_approved):
        state, history = await transfer_history(sessionmaker, ids[account])
        assert state == "completed"
        assert history[-1][1:] == ("completed", "audit", run.id)
    assert (await transfer_history(sessionmaker, ids[still_away]))[0] == "submitted"
    assert run.clients_changed == 3


async def test_a_request_for_a_client_a_probe_already_approved_completes_at_the_next_audit(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    (account,) = (a.encoded_account_id for a in auditor.sandbox.seed_accounts(1, partner="none"))
    await put_clients(sessionmaker, [account], ClientStatus.UNAFFILIATED)
    request_id = await file_request(sessionmaker, account, submit=True)
    auditor.sandbox.move(account, "ours")
    async with sessionmaker() as session, session.begin():
        await clients_service.record_evidence(
            session,
            account,
            Evidence(Membership.OURS, VerifiedVia.PLAN_PROBE, "plan_probe_ours"),
            clients_service.Actor(EventSource.PROBE),
        )
    assert (await transfer_history(sessionmaker, request_id))[0] == "submitted"

    run = await auditor.run()

    state, history = await transfer_history(sessionmaker, request_id)
    assert state == "completed"
    assert history[-1][1:] == ("completed", "audit", run.id)
    assert (await statuses(sessionmaker))[account] == "approved"
    assert run.clients_changed == 0
