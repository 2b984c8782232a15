"""The audit against the sandbox: cost, exact changes, safety on errors, the demotion guard."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditState
from app.clients.models import ClientStatus
from tests.audit.conftest import Auditor, audit_events, put_clients, statuses

APPROVED = ClientStatus.APPROVED


async def test_audit_of_1000_clients_costs_20_list_calls_and_makes_exactly_the_expected_changes(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ours = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(1000, partner="ours")]
    moved, person_approved = (
        a.encoded_account_id for a in auditor.sandbox.seed_accounts(2, partner="other")
    )
    await put_clients(sessionmaker, ours[:985], APPROVED)
    await put_clients(sessionmaker, ours[985:990], ClientStatus.OTHER_PARTNER)
    await put_clients(sessionmaker, [moved], APPROVED)
    await put_clients(
        sessionmaker,
        [person_approved],
        ClientStatus.BILLING_APPROVED,
        evidence_status=ClientStatus.OTHER_PARTNER,
    )
    auditor.sandbox.calls.clear()

    run = await auditor.run()

    assert auditor.list_calls() == math.ceil(1000 / 50) == 20
    assert auditor.token_calls() == 1
    assert (run.state, run.listing_completed) == (AuditState.COMPLETED, True)
    assert (run.pages_read, run.list_calls, run.token_calls, run.ctct_calls) == (20, 20, 1, 21)
    assert (run.clients_seen, run.clients_added, run.clients_changed) == (1000, 10, 6)
    assert (run.demotions, run.held_demotions, run.approved_before) == (1, 0, 1001)
    after = await statuses(sessionmaker)
    assert all(after[account] == "approved" for account in ours)
    assert after[moved] == "other_partner"
    assert after[person_approved] == "billing_approved"
    events = await audit_events(sessionmaker, run.id)
    assert sorted(events) == sorted(
        [(account, None, "approved") for account in ours[990:]]
        + [(account, "other_partner", "approved") for account in ours[985:990]]
        + [(moved, "approved", "other_partner")]
    )
    async with sessionmaker() as session:
        leftovers = await session.execute(text("SELECT count(*) FROM audit_seen"))
        assert leftovers.scalar_one() == 0


async def test_a_503_at_page_7_leaves_every_status_as_it_was_except_additions(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    unknown = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(20, partner="ours")]
    known = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(480, partner="ours")]
    gone = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(3, partner="other")]
    await put_clients(sessionmaker, known, APPROVED)
    await put_clients(sessionmaker, gone, APPROVED)
    before = await statuses(sessionmaker)
    auditor.sandbox.add_fault("unavailable", "list", after=6)

    run = await auditor.run()

    assert (run.state, run.listing_completed) == (AuditState.INCOMPLETE, False)
    assert run.pages_read == 6
    assert run.error is not None
    assert "503" in run.error
    assert (run.clients_added, run.clients_changed, run.demotions) == (20, 0, 0)
    after = await statuses(sessionmaker)
    assert {k: v for k, v in after.items() if k in before} == before
    assert {k: after[k] for k in unknown} == dict.fromkeys(unknown, "approved")
    assert all(
        to == "approved" and was is None for _, was, to in await audit_events(sessionmaker, run.id)
    )


async def test_the_demotion_guard_holds_a_mass_demotion_until_a_person_confirms(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    listed = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(50, partner="ours")]
    vanished = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(50, partner="other")]
    await put_clients(sessionmaker, listed + vanished, APPROVED)

    run = await auditor.run()

    assert run.state == AuditState.HELD
    assert (run.held_demotions, run.demotions, run.approved_before) == (50, 0, 100)
    assert set((await statuses(sessionmaker)).values()) == {"approved"}
    assert await audit_events(sessionmaker, run.id) == []


@pytest.mark.parametrize("ratio", [0.5])
async def test_demotions_within_the_ratio_are_applied_at_once(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession], ratio: float
) -> None:
    auditor.settings.audit.max_demotion_ratio = ratio
    listed = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(60, partner="ours")]
    vanished = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(40, partner="none")]
    await put_clients(sessionmaker, listed + vanished, APPROVED)

    run = await auditor.run()

    assert (run.state, run.demotions, run.held_demotions) == (AuditState.COMPLETED, 40, 0)
    after = await statuses(sessionmaker)
    assert {after[account] for account in vanished} == {"other_partner"}
