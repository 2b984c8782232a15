"""probe against the sandbox: every answer CTCT can give, and CTCT not answering."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import Membership
from app.clients.models import Client, ClientStatus, EventSource, StatusEvent, VerifiedVia
from app.clients.service import Actor
from app.ctct.client import CtctClient
from app.membership.probe import TokenAccountMismatch, probe
from app.sandbox.partners import OTHER_ENCODED_PARTNER_ID, OUR_ENCODED_PARTNER_ID
from app.sandbox.state import SandboxState

ACTOR = Actor(EventSource.PROBE, name="test-probe")
Sessions = async_sessionmaker[AsyncSession]


async def probe_account(
    ctct: CtctClient, sessionmaker: Sessions, account_id: str, **options: Any
) -> Client:
    """The client as the probe left it."""
    return (await probe(ctct, sessionmaker, account_id, **options)).client


async def events_of(sessionmaker: Sessions, account_id: str) -> list[StatusEvent]:
    async with sessionmaker() as session:
        client = await clients_service.get(session, account_id)
        rows = await session.execute(
            select(StatusEvent).where(StatusEvent.client_id == client.id).order_by(StatusEvent.id)
        )
        return list(rows.scalars())


async def test_plan_200_makes_a_new_client_approved_with_its_plan(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours", plan_type="GOLD", billing_status="Open")

    client = await probe_account(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)

    assert client.status == ClientStatus.APPROVED
    assert client.verified_via == VerifiedVia.PLAN_PROBE
    assert client.verified_at is not None
    assert (client.plan_type, client.billing_status) == ("GOLD", "Open")
    [event] = await events_of(sessionmaker, account.encoded_account_id)
    assert (event.from_status, event.to_status, event.source, event.actor) == (
        None,
        "approved",
        "probe",
        "test-probe",
    )


async def test_another_partners_account_is_other_partner(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="other")

    client = await probe_account(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)

    assert client.status == ClientStatus.OTHER_PARTNER
    assert client.status_reason == "plan_probe_not_managed"


async def test_an_id_ctct_does_not_know_is_other_partner_partner_unknown(
    ctct: CtctClient, sessionmaker: Sessions
) -> None:
    client = await probe_account(ctct, sessionmaker, "a0zzzzzzzzzz", actor=ACTOR)

    assert client.status == ClientStatus.OTHER_PARTNER
    assert client.status_reason == "plan_probe_not_found"


async def test_the_summary_tells_unaffiliated_from_other_partner(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    lone = sandbox.seed_account(partner="none", organization_name="Lone Wolf")
    theirs = sandbox.seed_account(partner="other")

    lone_client = await probe_account(
        ctct,
        sessionmaker,
        lone.encoded_account_id,
        actor=ACTOR,
        user_access_token=sandbox.mint_user_token(lone.encoded_account_id),
        our_partner_id=OUR_ENCODED_PARTNER_ID,
    )
    their_client = await probe_account(
        ctct,
        sessionmaker,
        theirs.encoded_account_id,
        actor=ACTOR,
        user_access_token=sandbox.mint_user_token(theirs.encoded_account_id),
        our_partner_id=OUR_ENCODED_PARTNER_ID,
    )

    assert lone_client.status == ClientStatus.UNAFFILIATED
    assert lone_client.verified_via == VerifiedVia.ACCOUNT_SUMMARY
    assert lone_client.organization_name == "Lone Wolf"
    assert lone_client.encoded_partner_id == ""
    assert their_client.status == ClientStatus.OTHER_PARTNER
    assert their_client.encoded_partner_id == OTHER_ENCODED_PARTNER_ID


async def test_a_plan_probe_without_a_token_keeps_a_known_unaffiliated_client(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    lone = sandbox.seed_account(partner="none")
    token = sandbox.mint_user_token(lone.encoded_account_id)
    await probe_account(
        ctct, sessionmaker, lone.encoded_account_id, actor=ACTOR, user_access_token=token
    )

    client = await probe_account(ctct, sessionmaker, lone.encoded_account_id, actor=ACTOR)

    assert client.status == ClientStatus.UNAFFILIATED


async def test_ours_with_a_token_mirrors_the_summary(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(
        partner="ours", organization_name="Hank's", contact_email="hank@example.com"
    )

    client = await probe_account(
        ctct,
        sessionmaker,
        account.encoded_account_id,
        actor=ACTOR,
        user_access_token=sandbox.mint_user_token(account.encoded_account_id),
        our_partner_id=OUR_ENCODED_PARTNER_ID,
    )

    assert client.status == ClientStatus.APPROVED
    assert client.verified_via == VerifiedVia.PLAN_PROBE
    assert (client.organization_name, client.contact_email) == ("Hank's", "hank@example.com")
    assert client.encoded_partner_id == OUR_ENCODED_PARTNER_ID


async def test_the_summary_decides_when_the_plan_endpoint_cannot_answer(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours")
    sandbox.add_fault("unavailable", "plan", count=5)

    client = await probe_account(
        ctct,
        sessionmaker,
        account.encoded_account_id,
        actor=ACTOR,
        user_access_token=sandbox.mint_user_token(account.encoded_account_id),
        our_partner_id=OUR_ENCODED_PARTNER_ID,
    )

    assert client.status == ClientStatus.APPROVED
    assert client.verified_via == VerifiedVia.ACCOUNT_SUMMARY


async def test_a_token_for_another_account_is_refused_and_nothing_is_recorded(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours")
    stranger = sandbox.seed_account(partner="none")

    with pytest.raises(TokenAccountMismatch):
        await probe_account(
            ctct,
            sessionmaker,
            account.encoded_account_id,
            actor=ACTOR,
            user_access_token=sandbox.mint_user_token(stranger.encoded_account_id),
        )

    async with sessionmaker() as session:
        assert (await session.execute(select(Client))).first() is None


async def test_ctct_down_creates_unverified_then_the_next_probe_approves(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours")
    fault = sandbox.add_fault("unavailable", "all", seconds=3600)

    result = await probe(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)

    assert not result.answered
    assert result.membership is Membership.UNKNOWN
    assert result.client.status == ClientStatus.UNVERIFIED
    assert result.client.verified_at is None

    sandbox.remove_fault(fault.id)
    client = await probe_account(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)

    assert client.status == ClientStatus.APPROVED
    events = await events_of(sessionmaker, account.encoded_account_id)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "unverified"),
        ("unverified", "approved"),
    ]


@pytest.mark.parametrize("fault", ["unavailable", "throttle", "quota", "server_error"])
async def test_ctct_unable_to_answer_leaves_a_known_client_exactly_as_it_was(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState, fault: str
) -> None:
    account = sandbox.seed_account(partner="ours")
    before = await probe_account(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)
    sandbox.add_fault(fault, "plan", count=10)

    result = await probe(ctct, sessionmaker, account.encoded_account_id, actor=ACTOR)

    assert not result.answered
    assert result.client.status == ClientStatus.APPROVED
    assert (result.client.updated_at, result.client.version) == (before.updated_at, before.version)
    assert len(await events_of(sessionmaker, account.encoded_account_id)) == 1


async def test_the_user_token_is_never_stored(
    ctct: CtctClient, sessionmaker: Sessions, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="none")
    token = sandbox.mint_user_token(account.encoded_account_id)

    await probe_account(
        ctct, sessionmaker, account.encoded_account_id, actor=ACTOR, user_access_token=token
    )

    async with sessionmaker() as session:
        dump = await session.execute(
            text(
                "SELECT row_to_json(c)::text FROM client c UNION ALL "
                "SELECT row_to_json(e)::text FROM status_event e"
            )
        )
        assert all(token not in row for row in dump.scalars())
