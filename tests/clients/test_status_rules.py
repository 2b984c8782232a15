"""DESIGN.md §3 status rules on a real database: every row of the table, every transition."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import ClientStatus, EventSource, StatusEvent, VerifiedVia
from app.clients.service import Actor
from app.errors import Conflict

Sessions = async_sessionmaker[AsyncSession]
PROBE = Actor(EventSource.PROBE, name="probe-key")
PERSON = Actor(EventSource.PERSON, name="dashboard-key")
S = ClientStatus
M = Membership


async def observe(sessionmaker: Sessions, account_id: str, membership: Membership) -> str:
    async with sessionmaker() as session, session.begin():
        outcome = await clients_service.record_evidence(
            session,
            account_id,
            Evidence(membership, VerifiedVia.PLAN_PROBE, f"test_{membership.value}"),
            PROBE,
        )
        return outcome.client.status


async def arrive_at(sessionmaker: Sessions, account_id: str, status: ClientStatus) -> None:
    """Bring a new client to `status` the way production would."""
    first = {
        S.APPROVED: M.OURS,
        S.OTHER_PARTNER: M.OTHER_PARTNER,
        S.UNAFFILIATED: M.NO_PARTNER,
        S.UNVERIFIED: M.UNKNOWN,
        S.BILLING_APPROVED: M.OTHER_PARTNER,
    }[status]
    await observe(sessionmaker, account_id, first)
    if status is S.BILLING_APPROVED:
        async with sessionmaker() as session, session.begin():
            await clients_service.approve_billing(session, account_id, note="ok", actor=PERSON)


async def events(sessionmaker: Sessions) -> list[StatusEvent]:
    async with sessionmaker() as session:
        return list((await session.execute(select(StatusEvent).order_by(StatusEvent.id))).scalars())


@pytest.mark.parametrize(
    ("membership", "expected"),
    [
        (M.OURS, S.APPROVED),
        (M.OTHER_PARTNER, S.OTHER_PARTNER),
        (M.NOT_OURS_PARTNER_UNKNOWN, S.OTHER_PARTNER),
        (M.NO_PARTNER, S.UNAFFILIATED),
        (M.UNKNOWN, S.UNVERIFIED),
    ],
)
async def test_a_new_client_takes_the_status_its_first_evidence_implies(
    sessionmaker: Sessions, membership: Membership, expected: ClientStatus
) -> None:
    assert await observe(sessionmaker, "acct1", membership) == expected
    [event] = await events(sessionmaker)
    assert (event.from_status, event.to_status, event.source, event.actor) == (
        None,
        expected.value,
        "probe",
        "probe-key",
    )


TRANSITIONS = [
    # ours wins from anywhere
    *[(start, M.OURS, S.APPROVED) for start in S],
    # not-ours evidence moves approved/unverified by partner
    (S.APPROVED, M.OTHER_PARTNER, S.OTHER_PARTNER),
    (S.APPROVED, M.NO_PARTNER, S.UNAFFILIATED),
    (S.APPROVED, M.NOT_OURS_PARTNER_UNKNOWN, S.OTHER_PARTNER),
    (S.UNVERIFIED, M.OTHER_PARTNER, S.OTHER_PARTNER),
    (S.UNVERIFIED, M.NO_PARTNER, S.UNAFFILIATED),
    (S.UNVERIFIED, M.NOT_OURS_PARTNER_UNKNOWN, S.OTHER_PARTNER),
    # a known partner changes with better evidence; vaguer evidence keeps what we know
    (S.OTHER_PARTNER, M.NO_PARTNER, S.UNAFFILIATED),
    (S.UNAFFILIATED, M.OTHER_PARTNER, S.OTHER_PARTNER),
    (S.UNAFFILIATED, M.NOT_OURS_PARTNER_UNKNOWN, S.UNAFFILIATED),
    (S.OTHER_PARTNER, M.NOT_OURS_PARTNER_UNKNOWN, S.OTHER_PARTNER),
    # billing approval survives every "not ours"
    (S.BILLING_APPROVED, M.OTHER_PARTNER, S.BILLING_APPROVED),
    (S.BILLING_APPROVED, M.NO_PARTNER, S.BILLING_APPROVED),
    (S.BILLING_APPROVED, M.NOT_OURS_PARTNER_UNKNOWN, S.BILLING_APPROVED),
    # CTCT unable to answer changes nothing
    *[(start, M.UNKNOWN, start) for start in S],
]


@pytest.mark.parametrize(("start", "membership", "expected"), TRANSITIONS)
async def test_evidence_moves_a_client_by_the_rules(
    sessionmaker: Sessions, start: ClientStatus, membership: Membership, expected: ClientStatus
) -> None:
    await arrive_at(sessionmaker, "acct1", start)
    before = len(await events(sessionmaker))

    assert await observe(sessionmaker, "acct1", membership) == expected

    after = await events(sessionmaker)
    assert len(after) == before + (0 if expected is start else 1)
    if expected is not start:
        assert (after[-1].from_status, after[-1].to_status) == (start.value, expected.value)


@pytest.mark.parametrize("start", [S.OTHER_PARTNER, S.UNAFFILIATED])
async def test_a_person_approves_billing_for_not_ours_clients_with_a_note(
    sessionmaker: Sessions, start: ClientStatus
) -> None:
    await arrive_at(sessionmaker, "acct1", start)
    async with sessionmaker() as session, session.begin():
        outcome = await clients_service.approve_billing(
            session, "acct1", note="pays extra", actor=PERSON
        )
    assert outcome.client.status == S.BILLING_APPROVED
    assert outcome.client.verified_via == VerifiedVia.PERSON
    last = (await events(sessionmaker))[-1]
    assert (last.source, last.actor, last.note, last.reason) == (
        "person",
        "dashboard-key",
        "pays extra",
        "billing_approved_by_person",
    )


@pytest.mark.parametrize("start", [S.APPROVED, S.UNVERIFIED, S.BILLING_APPROVED])
async def test_billing_approval_is_refused_for_other_statuses(
    sessionmaker: Sessions, start: ClientStatus
) -> None:
    await arrive_at(sessionmaker, "acct1", start)
    before = await events(sessionmaker)
    with pytest.raises(Conflict):
        async with sessionmaker() as session, session.begin():
            await clients_service.approve_billing(session, "acct1", note="no", actor=PERSON)
    assert len(await events(sessionmaker)) == len(before)


async def test_revocation_restores_the_status_the_latest_evidence_implies(
    sessionmaker: Sessions,
) -> None:
    await arrive_at(sessionmaker, "acct1", S.BILLING_APPROVED)  # was other_partner
    assert await observe(sessionmaker, "acct1", M.NO_PARTNER) == S.BILLING_APPROVED

    async with sessionmaker() as session, session.begin():
        outcome = await clients_service.revoke_billing(session, "acct1", note="ended", actor=PERSON)

    assert outcome.client.status == S.UNAFFILIATED
    last = (await events(sessionmaker))[-1]
    assert (last.from_status, last.to_status, last.note) == (
        "billing_approved",
        "unaffiliated",
        "ended",
    )


async def test_revoking_what_was_never_approved_is_a_conflict(sessionmaker: Sessions) -> None:
    await arrive_at(sessionmaker, "acct1", S.OTHER_PARTNER)
    with pytest.raises(Conflict):
        async with sessionmaker() as session, session.begin():
            await clients_service.revoke_billing(session, "acct1", note="x", actor=PERSON)


async def test_becoming_ours_supersedes_billing_approval_and_revocation_no_longer_applies(
    sessionmaker: Sessions,
) -> None:
    await arrive_at(sessionmaker, "acct1", S.BILLING_APPROVED)
    assert await observe(sessionmaker, "acct1", M.OURS) == S.APPROVED
    with pytest.raises(Conflict):
        async with sessionmaker() as session, session.begin():
            await clients_service.revoke_billing(session, "acct1", note="x", actor=PERSON)


async def test_a_decision_on_a_stale_version_is_a_conflict(sessionmaker: Sessions) -> None:
    await arrive_at(sessionmaker, "acct1", S.OTHER_PARTNER)
    async with sessionmaker() as session:
        version = (await clients_service.get(session, "acct1")).version
    await observe(sessionmaker, "acct1", M.NO_PARTNER)  # someone else changed it meanwhile

    with pytest.raises(Conflict):
        async with sessionmaker() as session, session.begin():
            await clients_service.approve_billing(
                session, "acct1", note="x", actor=PERSON, expected_version=version
            )


async def test_events_are_append_only_history(sessionmaker: Sessions) -> None:
    await arrive_at(sessionmaker, "acct1", S.UNVERIFIED)
    await observe(sessionmaker, "acct1", M.OTHER_PARTNER)
    first_two = [(e.id, e.to_status, e.created_at) for e in await events(sessionmaker)]
    await arrive_at(sessionmaker, "acct2", S.APPROVED)
    async with sessionmaker() as session, session.begin():
        await clients_service.approve_billing(session, "acct1", note="n", actor=PERSON)
        await clients_service.revoke_billing(session, "acct1", note="m", actor=PERSON)

    history = await events(sessionmaker)
    assert [(e.id, e.to_status, e.created_at) for e in history[:2]] == first_two
    assert [e.to_status for e in history] == [
        "unverified",
        "other_partner",
        "approved",
        "billing_approved",
        "other_partner",
    ]


async def test_mirrored_attributes_are_kept_when_evidence_does_not_report_them(
    sessionmaker: Sessions,
) -> None:
    async with sessionmaker() as session, session.begin():
        await clients_service.record_evidence(
            session,
            "acct1",
            Evidence(
                M.OURS,
                VerifiedVia.PARTNER_LIST,
                "in_list",
                MirroredAttributes(organization_name="Org", login_name="login1"),
            ),
            Actor(EventSource.AUDIT, audit_run_id=None),
        )
    await observe(sessionmaker, "acct1", M.OURS)
    async with sessionmaker() as session:
        client = await clients_service.get(session, "acct1")
    assert (client.organization_name, client.login_name) == ("Org", "login1")
