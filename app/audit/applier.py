"""Applying one page of our partner list to the store, in the caller's transaction.

Every account listed is ours. One piece of evidence is built per account and used whichever way
it goes:

- a client already `approved` is confirmed in one bulk statement (verification refreshed,
  attributes mirrored); one that left `approved` between our read and that statement goes
  through the status rules like any other;
- any other account, known or new, goes through the status rules (new ones are added
  `approved`; a billing approval is superseded);
- an account that is ours completes its open transfer request;
- the ids are written to `audit_seen`, so memory stays flat whatever the list's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository
from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.evidence import Evidence, Membership, MirroredAttributes, listed_attributes
from app.clients.models import ClientStatus, VerifiedVia
from app.ctct.schemas import AccountPage

REASON_IN_LIST = "in_partner_list"


@dataclass(frozen=True)
class Applied:
    """What one page did: ids new to the run, clients added, clients whose status changed."""

    seen: int
    added: int
    changed: int


def _evidence(page: AccountPage) -> dict[str, Evidence]:
    """The "ours" evidence for each account on the page, in list order (a repeated id once)."""
    evidence: dict[str, Evidence] = {}
    for account in page.accounts:
        evidence.setdefault(
            account.encoded_account_id,
            Evidence(
                Membership.OURS,
                VerifiedVia.PARTNER_LIST,
                reason=REASON_IN_LIST,
                attributes=listed_attributes(account),
            ),
        )
    return evidence


async def apply_page(
    session: AsyncSession, run_id: int, page: AccountPage, actor: clients_service.Actor
) -> Applied:
    """Record that every account on `page` is ours; flushes, never commits."""
    evidence = _evidence(page)
    seen = await repository.mark_seen(session, run_id, list(evidence))
    known = await clients_service.known_among(session, list(evidence))
    confirm: dict[str, MirroredAttributes] = {}
    transfers_to_complete: list[str] = []
    # New accounts (the newest come last in the list, whole pages of them) in a few statements.
    added_at_once = await clients_service.add_absent(
        session,
        {account_id: ours for account_id, ours in evidence.items() if account_id not in known},
        actor,
    )
    added, changed = len(added_at_once), 0
    for account_id, ours in evidence.items():
        client = known.get(account_id)
        if account_id in added_at_once:
            continue
        if client is not None and client.status == ClientStatus.APPROVED.value:
            if client.has_open_transfer:
                # Already approved (a probe got there first): its request completes now.
                transfers_to_complete.append(account_id)
            confirm[account_id] = ours.attributes
            continue
        outcome = await clients_service.record_evidence(session, account_id, ours, actor)
        await clients_transfers.complete_transfer_requests_for(
            session, account_id, actor, client=outcome.client
        )
        if outcome.created:
            added += 1
        elif outcome.changed:
            changed += 1
    confirmed = await clients_service.confirm_approved(
        session, confirm, via=VerifiedVia.PARTNER_LIST
    )
    if confirmed < len(confirm):
        # A client left `approved` between our read and the update: apply the rules.
        changed += await _confirm_stragglers(session, confirm, evidence, actor)
    for account_id in transfers_to_complete:
        await clients_transfers.complete_transfer_requests_for(session, account_id, actor)
    return Applied(seen=seen, added=added, changed=changed)


async def _confirm_stragglers(
    session: AsyncSession,
    confirm: Mapping[str, MirroredAttributes],
    evidence: Mapping[str, Evidence],
    actor: clients_service.Actor,
) -> int:
    changed = 0
    for account_id in confirm:
        client = await clients_service.get(session, account_id)
        if (
            client.status == ClientStatus.APPROVED.value
            and client.verified_via == VerifiedVia.PARTNER_LIST.value
        ):
            continue
        outcome = await clients_service.record_evidence(
            session, account_id, evidence[account_id], actor
        )
        changed += int(outcome.changed)
    return changed
