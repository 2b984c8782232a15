"""The status store's rules: every change goes through here, with its event and notification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import repository
from app.clients.evidence import (
    NOT_OURS,
    Evidence,
    Membership,
    MirroredAttributes,
    evidence_status,
    next_status,
)
from app.clients.models import (
    Client,
    ClientStatus,
    EventSource,
    StatusEvent,
    VerifiedVia,
)
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.webhooks import service as webhooks_service

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a source, and the API key name when a caller did."""

    source: EventSource
    name: str | None = None
    audit_run_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    client: Client
    created: bool
    changed_from: ClientStatus | None
    event: StatusEvent | None

    @property
    def changed(self) -> bool:
        return self.event is not None


async def get(
    session: AsyncSession, encoded_account_id: str, *, for_update: bool = False
) -> Client:
    """The client (locked until the transaction ends with `for_update`), or a 404 problem."""
    client = await repository.by_account_id(session, encoded_account_id, for_update=for_update)
    if client is None:
        raise NotFound(f"no client with encoded_account_id {encoded_account_id!r}")
    return client


async def _change_status(
    session: AsyncSession,
    client: Client,
    to: ClientStatus,
    *,
    reason: str,
    actor: Actor,
    note: str | None = None,
    previous: ClientStatus | None,
) -> StatusEvent:
    client.status = to.value
    client.status_reason = reason
    client.updated_at = utcnow()
    await session.flush()
    event = await repository.add_event(
        session,
        StatusEvent(
            client_id=client.id,
            from_status=previous.value if previous else None,
            to_status=to.value,
            reason=reason,
            source=actor.source.value,
            actor=actor.name,
            note=note,
            audit_run_id=actor.audit_run_id,
        ),
    )
    await repository.notify_status_changed(session, client.encoded_account_id)
    await webhooks_service.status_changed(
        session,
        webhooks_service.status_change(
            encoded_account_id=client.encoded_account_id,
            from_status=event.from_status,
            to_status=event.to_status,
            reason=reason,
            source=event.source,
            actor=actor.name,
            status_event_id=event.id,
            audit_run_id=actor.audit_run_id,
        ),
    )
    return event


async def record_evidence(
    session: AsyncSession, encoded_account_id: str, evidence: Evidence, actor: Actor
) -> Outcome:
    """Apply one observation of CTCT to a client (creating it when new); flushes, never commits."""
    client = await repository.by_account_id(session, encoded_account_id, for_update=True)
    created = client is None
    if client is None:
        client = await _insert(session, encoded_account_id, evidence)
        if client is None:  # a concurrent writer inserted it first
            client = await repository.by_account_id(session, encoded_account_id, for_update=True)
            assert client is not None
            created = False
    for name, value in evidence.attributes.reported().items():
        setattr(client, name, value)
    if evidence.membership is not Membership.UNKNOWN:
        client.verified_at = utcnow()
        client.verified_via = evidence.via.value if evidence.via else None
        says = evidence_status(evidence.membership)
        vaguer = (
            evidence.membership is Membership.NOT_OURS_PARTNER_UNKNOWN
            and ClientStatus(client.evidence_status) in NOT_OURS
        )
        if not vaguer:
            client.evidence_status = says.value
    if created:
        event = await _change_status(
            session,
            client,
            ClientStatus(client.status),
            reason=evidence.reason,
            actor=actor,
            previous=None,
        )
        return Outcome(client, True, None, event)
    current = ClientStatus(client.status)
    target = next_status(current, evidence.membership)
    if target is current:
        client.updated_at = utcnow()
        await session.flush()
        return Outcome(client, False, None, None)
    event = await _change_status(
        session, client, target, reason=evidence.reason, actor=actor, previous=current
    )
    return Outcome(client, False, current, event)


async def record_probe(
    session: AsyncSession, encoded_account_id: str, evidence: Evidence, actor: Actor
) -> Outcome:
    """Record what a probe learned.

    CTCT saying nothing (and reporting nothing) leaves a known client exactly as it was. An
    answer that changes no status still moved `verified_at`, so every replica is told to re-read
    the client (one caching it as stale would otherwise keep re-probing it).
    """
    answered = evidence.membership is not Membership.UNKNOWN
    if not answered and not evidence.attributes.reported():
        known = await repository.by_account_id(session, encoded_account_id)
        if known is not None:
            return Outcome(known, False, None, None)
    outcome = await record_evidence(session, encoded_account_id, evidence, actor)
    if answered and not outcome.changed:
        await repository.notify_status_changed(session, encoded_account_id)
    return outcome


async def known_among(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, repository.KnownClient]:
    """The clients we already have among `account_ids`: status, and whether a transfer is open."""
    return await repository.known(session, account_ids)


async def confirm_approved(
    session: AsyncSession, listed: Mapping[str, MirroredAttributes], *, via: VerifiedVia
) -> int:
    """`Ours` evidence for many clients in one statement; only those still approved take it.

    Their status does not change (no event, nothing to notify): verification is refreshed and the
    site owner, organization and billing status mirrored. Returns how many were confirmed; the
    caller applies `record_evidence` to the others.
    """
    return await repository.confirm_approved(session, listed, via=via, now=utcnow())


async def refresh_mirror(
    session: AsyncSession, listed: Mapping[str, MirroredAttributes], *, via: VerifiedVia
) -> int:
    """What a reading of our partner list says about the clients we hold, their status untouched.

    Approved clients are confirmed in one statement (`confirm_approved`); any other listed client
    we hold gets the mirrored attributes only: changing its status is the audit's to do. Returns
    how many clients were refreshed.
    """
    confirmed = await confirm_approved(session, listed, via=via)
    if confirmed == len(listed):
        return confirmed
    known = await repository.known(session, list(listed))
    others = [
        account_id
        for account_id, client in known.items()
        if client.status != ClientStatus.APPROVED.value
    ]
    for account_id in others:
        await mirror_attributes(session, account_id, listed[account_id])
    return confirmed + len(others)


async def demote_unless_confirmed(
    session: AsyncSession,
    encoded_account_id: str,
    evidence: Evidence,
    actor: Actor,
    *,
    since: datetime,
) -> bool:
    """Apply "not ours" evidence to a client still approved and not verified since `since`.

    The client is locked while it is checked, so evidence recorded meanwhile (a probe confirming
    it) wins. True when its status changed.
    """
    client = await repository.by_account_id(session, encoded_account_id, for_update=True)
    if client is None or client.status != ClientStatus.APPROVED.value:
        return False
    if client.verified_at is not None and client.verified_at >= since:
        return False
    outcome = await record_evidence(session, encoded_account_id, evidence, actor)
    return outcome.changed


async def count_with_status(session: AsyncSession, status: ClientStatus) -> int:
    """How many clients hold `status`."""
    return await repository.count_with_status(session, status)


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many clients hold each status, every status listed."""
    counts = await repository.count_by_status(session)
    return {status.value: counts.get(status.value, 0) for status in ClientStatus}


async def mirror_attributes(
    session: AsyncSession, encoded_account_id: str, attributes: MirroredAttributes
) -> Client | None:
    """Copy what CTCT reported onto a known client; its status is left alone."""
    client = await repository.by_account_id(session, encoded_account_id, for_update=True)
    if client is None:
        return None
    for name, value in attributes.reported().items():
        setattr(client, name, value)
    client.updated_at = utcnow()
    await session.flush()
    return client


async def _insert(
    session: AsyncSession, encoded_account_id: str, evidence: Evidence
) -> Client | None:
    client = Client(**_new_client(encoded_account_id, evidence))
    try:
        async with session.begin_nested():
            await repository.add(session, client)
    except IntegrityError:
        return None
    return client


def _new_client(encoded_account_id: str, evidence: Evidence) -> dict[str, object]:
    """The row of a client the store first hears of through `evidence`."""
    status = evidence_status(evidence.membership)
    return {
        "encoded_account_id": encoded_account_id,
        "status": status.value,
        "evidence_status": status.value,
        "status_reason": evidence.reason,
    }


async def add_absent(
    session: AsyncSession, evidence: Mapping[str, Evidence], actor: Actor
) -> set[str]:
    """`record_evidence` for accounts the store does not know, a few statements for all: the
    ids added. One a concurrent writer added meanwhile is left out, for `record_evidence`."""
    now = utcnow()
    rows: dict[str, dict[str, object]] = {}
    for account_id, observed in evidence.items():
        rows[account_id] = _new_client(account_id, observed) | vars(observed.attributes)
        if observed.membership is not Membership.UNKNOWN:
            rows[account_id] |= {
                "verified_at": now,
                "verified_via": observed.via.value if observed.via else None,
            }
    added = await repository.add_absent(session, list(rows.values()))
    # Each added client's first status event, as `_change_status` writes one (from nothing).
    events = {
        account_id: {
            "client_id": client_id,
            "from_status": None,
            "to_status": rows[account_id]["status"],
            "reason": rows[account_id]["status_reason"],
            "source": actor.source.value,
            "actor": actor.name,
            "audit_run_id": actor.audit_run_id,
        }
        for account_id, client_id in added.items()
    }
    event_ids = await repository.add_events(session, list(events.values()))
    await repository.notify_each_status_changed(session, list(added))
    await webhooks_service.statuses_changed(
        session,
        [
            webhooks_service.status_change(
                encoded_account_id=account_id,
                from_status=None,
                to_status=str(event["to_status"]),
                reason=str(event["reason"]),
                source=actor.source.value,
                actor=actor.name,
                status_event_id=event_ids[added[account_id]],
                audit_run_id=actor.audit_run_id,
            )
            for account_id, event in events.items()
        ],
    )
    return set(added)


async def status_changes_per_day(
    session: AsyncSession, *, days: int, today: date | None = None
) -> list[tuple[date, int]]:
    """How many status changes each of the last `days` UTC days saw, oldest first, zeros kept."""
    last = today or utcnow().date()
    first = last - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counts = await repository.count_events_by_day(session, since)
    return [(day, counts.get(day, 0)) for day in (first + timedelta(n) for n in range(days))]


def check_version(kind: str, current: int, expected: int | None) -> None:
    """409 when a person decided on a version that has changed since they loaded it."""
    if expected is not None and expected != current:
        raise Conflict(
            f"the {kind} changed since version {expected} (now {current}); reload and decide again",
            extra={"current_version": current},
        )


async def approve_billing(
    session: AsyncSession,
    encoded_account_id: str,
    *,
    note: str,
    actor: Actor,
    expected_version: int | None = None,
) -> Outcome:
    """A person approves a not-ours client for extra billing (409 when its status forbids it)."""
    client = await get(session, encoded_account_id, for_update=True)
    check_version("client", client.version, expected_version)
    current = ClientStatus(client.status)
    if current not in NOT_OURS:
        raise Conflict(
            f"billing approval applies to other_partner or unaffiliated clients; "
            f"this one is {current.value}"
        )
    event = await _change_status(
        session,
        client,
        ClientStatus.BILLING_APPROVED,
        reason="billing_approved_by_person",
        actor=actor,
        note=note,
        previous=current,
    )
    client.verified_via = VerifiedVia.PERSON.value
    log.info("clients.billing_approval.granted", client=encoded_account_id, actor=actor.name)
    return Outcome(client, False, current, event)


async def revoke_billing(
    session: AsyncSession,
    encoded_account_id: str,
    *,
    note: str,
    actor: Actor,
    expected_version: int | None = None,
) -> Outcome:
    """A person withdraws a billing approval; the evidence-based status returns."""
    client = await get(session, encoded_account_id, for_update=True)
    check_version("client", client.version, expected_version)
    if client.status != ClientStatus.BILLING_APPROVED:
        raise Conflict(f"this client is {client.status}, not billing_approved")
    restored = ClientStatus(client.evidence_status)
    event = await _change_status(
        session,
        client,
        restored,
        reason="billing_approval_revoked",
        actor=actor,
        note=note,
        previous=ClientStatus.BILLING_APPROVED,
    )
    log.info(
        "clients.billing_approval.revoked",
        client=encoded_account_id,
        actor=actor.name,
        status=restored.value,
    )
    return Outcome(client, False, ClientStatus.BILLING_APPROVED, event)
