"""Applying import rows to the status store, a batch at a time, in the caller's transaction.

Each row has been resolved to an account (or not) and CTCT has been asked beforehand: our
partner list, read once for the whole file, and for an account missing from it and unknown to us,
one plan probe. Here nothing calls CTCT. The rules:

- listed in our partner list: CTCT's evidence that it is ours; the client becomes (or stays)
  `approved` through `clients.service`, like the audit does (source `import`, the importer as
  actor). Clients already approved are confirmed in one statement.
- not listed: never approved. A row without a wish is brought in with what CTCT said; a wish of
  `approved` is refused; `billing_approved` (with its note) is the importer's decision, recorded
  as a person's (source `person`, the importer as actor), for a client that is not ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.evidence import (
    NOT_OURS,
    Evidence,
    Membership,
    listed_attributes,
)
from app.clients.models import ClientStatus, EventSource, VerifiedVia
from app.ctct.schemas import SiteOwner
from app.imports.csv_rows import RowIn
from app.imports.models import Outcome, Wish
from app.membership import probe as membership_probe

REASON_IN_LIST = "in_partner_list"


@dataclass(frozen=True)
class Target:
    """A row ready to apply: the account it resolved to and what CTCT said about it."""

    row: RowIn
    account_id: str | None
    listed: SiteOwner | None = None
    probed: Evidence | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class RowResult:
    """What became of one row."""

    line: int
    outcome: Outcome
    detail: str
    account_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Context:
    """Who imports, and when our partner list was read."""

    actor_name: str
    listed_at: datetime
    import_id: int | None

    @property
    def evidence_actor(self) -> clients_service.Actor:
        return clients_service.Actor(EventSource.IMPORT, name=self.actor_name)

    @property
    def person(self) -> clients_service.Actor:
        return clients_service.Actor(EventSource.PERSON, name=self.actor_name)

    def listing(self) -> str:
        return f"our partner list (read {self.listed_at.isoformat(timespec='seconds')})"


def _ours(account: SiteOwner) -> Evidence:
    return Evidence(
        Membership.OURS, VerifiedVia.PARTNER_LIST, REASON_IN_LIST, listed_attributes(account)
    )


async def apply_batch(
    session: AsyncSession, targets: Sequence[Target], context: Context
) -> list[RowResult]:
    """One result per target, in order; flushes, never commits."""
    listed = [t for t in targets if t.refusal is None and t.listed is not None]
    known = await clients_service.known_among(
        session, [t.account_id for t in listed if t.account_id is not None]
    )
    confirm = {
        t.account_id: listed_attributes(t.listed)
        for t in listed
        if t.account_id is not None
        and t.listed is not None
        and (client := known.get(t.account_id)) is not None
        and client.status == ClientStatus.APPROVED.value
        and not client.has_open_transfer
    }
    confirmed = await clients_service.confirm_approved(
        session, confirm, via=VerifiedVia.PARTNER_LIST
    )
    in_bulk = set(confirm) if confirmed == len(confirm) else set()
    results = []
    for target in targets:
        if target.account_id in in_bulk:
            results.append(_already_approved(target, context))
        else:
            results.append(await _apply(session, target, context))
    return results


def _already_approved(target: Target, context: Context) -> RowResult:
    detail = f"approved: in {context.listing()}"
    if target.row.wish is Wish.BILLING_APPROVED:
        detail += "; ours, so no billing approval is needed"
    return RowResult(
        target.row.line,
        Outcome.ALREADY_SO,
        detail,
        target.account_id,
        ClientStatus.APPROVED.value,
    )


async def _apply(session: AsyncSession, target: Target, context: Context) -> RowResult:
    row = target.row
    if target.refusal is not None:
        return RowResult(row.line, Outcome.REFUSED, target.refusal, target.account_id)
    if target.account_id is None:
        return RowResult(
            row.line,
            Outcome.NOT_FOUND,
            f"no account with this login name in {context.listing()} or in our store",
        )
    if target.listed is not None:
        return await _evidence_of_ours(session, target, _ours(target.listed), context)
    probed = target.probed
    if probed is not None and probed.membership is Membership.OURS:
        return await _evidence_of_ours(session, target, probed, context)
    if probed is not None and membership_probe.says_unknown_account(probed):
        return RowResult(
            row.line, Outcome.NOT_FOUND, "CTCT has no account with this id", target.account_id
        )
    created = False
    if probed is not None:
        outcome = await clients_service.record_evidence(
            session, target.account_id, probed, context.evidence_actor
        )
        created = outcome.created
    return await _not_ours(session, target, context, created=created)


async def _evidence_of_ours(
    session: AsyncSession, target: Target, evidence: Evidence, context: Context
) -> RowResult:
    assert target.account_id is not None
    actor = context.evidence_actor
    outcome = await clients_service.record_evidence(session, target.account_id, evidence, actor)
    await clients_transfers.complete_transfer_requests_for(
        session, target.account_id, actor, client=outcome.client
    )
    where = context.listing() if target.listed is not None else "CTCT's plan endpoint"
    if outcome.created:
        result, detail = Outcome.ADDED, f"ours (in {where}): approved"
    elif outcome.changed and outcome.changed_from is not None:
        result = Outcome.APPROVED_BY_EVIDENCE
        detail = f"ours (in {where}): {outcome.changed_from.value} -> approved"
    else:
        result, detail = Outcome.ALREADY_SO, f"approved: in {where}"
    if target.row.wish is Wish.BILLING_APPROVED:
        detail += "; ours, so no billing approval is needed"
    return RowResult(target.row.line, result, detail, target.account_id, outcome.client.status)


async def _not_ours(
    session: AsyncSession, target: Target, context: Context, *, created: bool
) -> RowResult:
    assert target.account_id is not None
    row = target.row
    client = await clients_service.get(session, target.account_id)
    status = ClientStatus(client.status)
    missing = f"not in {context.listing()}"

    def result(outcome: Outcome, detail: str) -> RowResult:
        return RowResult(row.line, outcome, detail, target.account_id, client.status)

    if row.wish is None:
        if created:
            return result(Outcome.ADDED, f"added as {status.value}: {missing}")
        return result(Outcome.ALREADY_SO, f"{status.value}: {missing}")
    if status is ClientStatus.APPROVED:
        return result(
            Outcome.REFUSED,
            f"approved in our store but {missing}; the next audit decides, not a file",
        )
    if row.wish is Wish.APPROVED:
        return result(
            Outcome.REFUSED,
            f"{missing} (CTCT says {status.value}): nothing is approved without CTCT's evidence",
        )
    if status is ClientStatus.BILLING_APPROVED:
        return result(Outcome.ALREADY_SO, "billing_approved already")
    if status not in NOT_OURS:
        return result(Outcome.REFUSED, f"{status.value}: CTCT has not said whose account it is")
    source = f"import {context.import_id}" if context.import_id is not None else "import file"
    note = f"{row.note} ({source}, line {row.line})"
    outcome = await clients_service.approve_billing(
        session, target.account_id, note=note, actor=context.person
    )
    return RowResult(
        row.line,
        Outcome.BILLING_APPROVED,
        f"billing_approved (was {status.value}) by {context.actor_name}",
        target.account_id,
        outcome.client.status,
    )
