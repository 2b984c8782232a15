"""The audit: reconcile our whole store with CTCT's partner list, cheaply and safely.

A run pages `GET /partner/accounts?limit=50` at background priority, so N clients cost ⌈N/50⌉
list calls. Each page is read first and then applied in its own short transaction (no CTCT call
waits inside a transaction; the next page is fetched while the current one is applied):

- accounts we did not know are added `approved`; known ones get "ours" evidence (an approved
  client is confirmed in one bulk statement; any other status goes through the status rules,
  which also supersede a billing approval);
- the ids seen are written to `audit_seen`, so memory stays flat whatever N is.

Only when the listing completed are approved clients missing from it demoted (evidence "not
ours, partner unknown"; a billing approval is untouched by the rules). A run stopped by a CTCT
error or the daily budget ends `incomplete` and demotes nobody. If the demotions would exceed
`AUDIT_MAX_DEMOTION_RATIO` of approved clients, the run ends `held` with the list kept in
`audit_held_demotion` until a person confirms or rejects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import Client, ClientStatus, EventSource, VerifiedVia
from app.ctct.budget import Priority
from app.ctct.client import LIST_LIMIT_MAX, CtctClient, build_ctct_client
from app.ctct.errors import CtctError
from app.ctct.models import AccountPage, SiteOwner
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.health.metrics import AUDIT_RUNS
from app.membership import audit_repository as repository
from app.membership.audit_models import AuditRun, AuditState, AuditTrigger, HeldResolution
from app.settings import CtctSettings, Settings

log = structlog.get_logger(__name__)

RUN_TASK = "audit.run"
QUEUE = "audit"
QUEUEING_LOCK = "audit-run"
DEMOTION_BATCH = 200
# Pages read ahead of the one being applied (each is 50 ids: memory stays flat).
READ_AHEAD_PAGES = 4
# A running run that has not beaten for this long lost its process; the slot is freed.
HEARTBEAT_TIMEOUT = timedelta(minutes=10)
REASON_IN_LIST = "in_partner_list"
REASON_MISSING = "missing_from_partner_list"


class AuditInProgress(Conflict):
    type_slug = "audit-in-progress"
    title = "An audit is already in progress"


class AuditNotFound(NotFound):
    type_slug = "audit-not-found"
    title = "No such audit"


class NothingHeld(Conflict):
    type_slug = "audit-nothing-held"
    title = "This audit holds no demotions"


@dataclass
class CallMeter:
    """Counts the HTTP requests one audit's CTCT client sends: list pages and token fetches."""

    token_path: str
    list_calls: int = 0
    token_calls: int = 0

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.path == self.token_path and request.method == "POST":
            self.token_calls += 1
        else:
            self.list_calls += 1


def build_audit_client(
    settings: CtctSettings,
    *,
    engine: AsyncEngine,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[CtctClient, CallMeter]:
    """A CTCT client of the audit's own (sharing the database budget) that counts its calls."""
    meter = CallMeter(token_path=httpx.URL(settings.token_url).path)
    client = build_ctct_client(
        settings, engine=engine, transport=transport, on_request=meter.on_request
    )
    return client, meter


@dataclass
class _Tally:
    pages: int = 0
    seen: int = 0
    added: int = 0
    changed: int = 0
    demoted: int = 0
    started: float = field(default_factory=time.monotonic)


def _actor(run: AuditRun) -> clients_service.Actor:
    return clients_service.Actor(EventSource.AUDIT, name=f"audit-{run.id}", audit_run_id=run.id)


def _attributes(account: SiteOwner) -> MirroredAttributes:
    return MirroredAttributes(
        site_owner_name=account.site_owner_name,
        organization_name=account.organization_name,
        billing_status=account.billing_status,
    )


# Starting runs


async def request_run(session: AsyncSession, *, requested_by: str | None) -> AuditRun:
    """Queue a run for the worker (in the caller's transaction); 409 if one is active."""
    await repository.abandon_stale(session, utcnow() - HEARTBEAT_TIMEOUT, utcnow())
    run = await repository.insert_run(
        session, state=AuditState.QUEUED, trigger=AuditTrigger.API, requested_by=requested_by
    )
    if run is None:
        current = await repository.active(session)
        raise AuditInProgress(
            "An audit is already queued or running; watch it instead.",
            headers={"Location": f"/v1/audits/{current.id}"} if current else None,
            extra={"audit_id": current.id} if current else None,
        )
    await _defer(session, run.id)
    log.info("audit.run.queued", audit_run_id=run.id, requested_by=requested_by)
    return run


async def _defer(session: AsyncSession, run_id: int) -> None:
    from app.worker import worker_app

    raw = await (await session.connection()).get_raw_connection()
    deferrer = worker_app.configure_task(
        name=RUN_TASK,
        queue=QUEUE,
        connection=raw.driver_connection,
        queueing_lock=f"{QUEUEING_LOCK}-{run_id}",
    )
    try:
        async with session.begin_nested():
            await deferrer.defer_async(run_id=run_id)
    except AlreadyEnqueued:
        pass


async def open_run(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    trigger: AuditTrigger,
    requested_by: str | None = None,
    scheduled_for: datetime | None = None,
) -> AuditRun | None:
    """Create a run in state `running` now; None if one is active or the period has its run."""
    async with sessionmaker() as session, session.begin():
        now = utcnow()
        await repository.abandon_stale(session, now - HEARTBEAT_TIMEOUT, now)
        run = await repository.insert_run(
            session,
            state=AuditState.RUNNING,
            trigger=trigger,
            requested_by=requested_by,
            scheduled_for=scheduled_for,
        )
        if run is None:
            return None
        run.started_at = now
        run.heartbeat_at = now
        await session.flush()
        log.info("audit.run.started", audit_run_id=run.id, trigger=trigger.value)
        return run


async def claim_queued(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: int
) -> AuditRun | None:
    """Move a queued run to `running`; None if it is not queued any more."""
    async with sessionmaker() as session, session.begin():
        run = await repository.get(session, run_id, for_update=True)
        if run is None or run.state != AuditState.QUEUED.value:
            return None
        now = utcnow()
        run.state = AuditState.RUNNING.value
        run.started_at = now
        run.heartbeat_at = now
        await session.flush()
        log.info("audit.run.started", audit_run_id=run.id, trigger=run.trigger)
        return run


# Running


async def execute(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    run: AuditRun,
    ctct: CtctClient,
    meter: CallMeter,
) -> AuditRun:
    """Carry a `running` run to its end state; every change is committed page by page."""
    tally = _Tally()
    try:
        completed = await _read_list(sessionmaker, run, ctct, meter, tally)
        if not completed:
            return await _finish(sessionmaker, run, meter, tally, AuditState.INCOMPLETE)
        state = await _demote_missing(sessionmaker, settings, run, tally)
        return await _finish(sessionmaker, run, meter, tally, state)
    except BaseException as exc:
        await asyncio.shield(
            _finish(
                sessionmaker,
                run,
                meter,
                tally,
                AuditState.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        )
        raise


async def _pages(ctct: CtctClient) -> AsyncGenerator[AccountPage, None]:
    async for page in ctct.iter_account_pages(limit=LIST_LIMIT_MAX, priority=Priority.BACKGROUND):
        yield page


async def _read_list(
    sessionmaker: async_sessionmaker[AsyncSession],
    run: AuditRun,
    ctct: CtctClient,
    meter: CallMeter,
    tally: _Tally,
) -> bool:
    """Apply every page; False when CTCT (or our budget) stopped the listing."""
    # A reader task fetches up to READ_AHEAD_PAGES ahead while pages are applied in order: no
    # transaction waits on CTCT, and a slow commit never delays the next CTCT call (the budget's
    # sliding window never gives back time lost between two grants).
    queue: asyncio.Queue[AccountPage | Exception | None] = asyncio.Queue(READ_AHEAD_PAGES)
    reader = asyncio.create_task(_read_ahead(ctct, queue))
    try:
        while True:
            item = await queue.get()
            if item is None:
                return True
            if isinstance(item, CtctError):
                run.error = str(item)[:500]
                log.warning(
                    "audit.list.stopped",
                    audit_run_id=run.id,
                    pages_read=tally.pages,
                    error_type=type(item).__name__,
                    status=item.status,
                )
                return False
            if isinstance(item, Exception):
                raise item
            await _apply_page(sessionmaker, run, item, meter, tally)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _read_ahead(
    ctct: CtctClient, queue: asyncio.Queue[AccountPage | Exception | None]
) -> None:
    """Queue every page in order, then None; or the error that stopped the listing."""
    try:
        async with contextlib.aclosing(_pages(ctct)) as pages:
            async for page in pages:
                await queue.put(page)
    except Exception as exc:  # handed to the applier, which stops (CtctError) or re-raises
        await queue.put(exc)
        return
    await queue.put(None)


async def _apply_page(
    sessionmaker: async_sessionmaker[AsyncSession],
    run: AuditRun,
    page: AccountPage,
    meter: CallMeter,
    tally: _Tally,
) -> None:
    accounts: dict[str, SiteOwner] = {}
    for account in page.accounts:
        accounts.setdefault(account.encoded_account_id, account)
    actor = _actor(run)
    async with sessionmaker() as session, session.begin():
        # A page's changes are re-derived by the next run if a crash loses them; not waiting for
        # the WAL flush on each of ⌈N/50⌉ commits keeps the audit at the speed of the list.
        await repository.relax_commit(session)
        new = await repository.mark_seen(session, run.id, list(accounts))
        known = await repository.known(session, list(accounts))
        confirm: list[dict[str, Any]] = []
        transfers_to_complete: list[str] = []
        for account_id, account in accounts.items():
            client = known.get(account_id)
            if client is not None and client.status == ClientStatus.APPROVED.value:
                if client.has_open_transfer:
                    # Already approved (a probe got there first): its request completes now.
                    transfers_to_complete.append(account_id)
                confirm.append(
                    {
                        "encoded_account_id": account_id,
                        "site_owner_name": account.site_owner_name,
                        "organization_name": account.organization_name,
                        "billing_status": account.billing_status,
                    }
                )
                continue
            outcome = await clients_service.record_evidence(
                session,
                account_id,
                Evidence(
                    Membership.OURS,
                    VerifiedVia.PARTNER_LIST,
                    reason=REASON_IN_LIST,
                    attributes=_attributes(account),
                ),
                actor,
            )
            await _on_ours(session, outcome.client, actor)
            if outcome.created:
                tally.added += 1
            elif outcome.changed:
                tally.changed += 1
        confirmed = await repository.confirm_approved(session, confirm, utcnow())
        if confirmed < len(confirm):
            # A client left `approved` between our read and the update: apply the rules.
            await _confirm_stragglers(session, confirm, accounts, actor, tally)
        for account_id in transfers_to_complete:
            await clients_transfers.complete_transfer_requests_for(session, account_id, actor)
        tally.pages += 1
        tally.seen += new
        await _save_progress(session, run, meter, tally)


async def _confirm_stragglers(
    session: AsyncSession,
    confirm: list[dict[str, Any]],
    accounts: dict[str, SiteOwner],
    actor: clients_service.Actor,
    tally: _Tally,
) -> None:
    for row in confirm:
        account_id = row["encoded_account_id"]
        client = await clients_service.get(session, account_id)
        if client.status == ClientStatus.APPROVED.value and client.verified_via == "partner_list":
            continue
        outcome = await clients_service.record_evidence(
            session,
            account_id,
            Evidence(
                Membership.OURS,
                VerifiedVia.PARTNER_LIST,
                reason=REASON_IN_LIST,
                attributes=_attributes(accounts[account_id]),
            ),
            actor,
        )
        if outcome.changed:
            tally.changed += 1


async def _on_ours(session: AsyncSession, client: Client, actor: clients_service.Actor) -> None:
    """An account found in our list completes any open transfer request for it."""
    await clients_transfers.complete_transfer_requests_for(
        session, client.encoded_account_id, actor, client=client
    )


async def _save_progress(
    session: AsyncSession, run: AuditRun, meter: CallMeter, tally: _Tally
) -> None:
    row = await repository.get(session, run.id)
    assert row is not None
    row.pages_read = tally.pages
    row.list_calls = meter.list_calls
    row.token_calls = meter.token_calls
    row.clients_seen = tally.seen
    row.clients_added = tally.added
    row.clients_changed = tally.changed
    row.demotions = tally.demoted
    row.heartbeat_at = utcnow()
    await session.flush()


async def _demote_missing(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    run: AuditRun,
    tally: _Tally,
) -> AuditState:
    """Demote approved clients absent from a complete listing, or hold them if too many."""
    assert run.started_at is not None
    started_at = run.started_at
    async with sessionmaker() as session, session.begin():
        approved = await repository.count_approved(session)
        missing = await repository.count_missing(session, run.id, started_at)
        row = await repository.get(session, run.id)
        assert row is not None
        row.listing_completed = True
        row.approved_before = approved
        if missing and missing > settings.audit.max_demotion_ratio * approved:
            held = await repository.hold_missing(session, run.id, started_at)
            row.held_demotions = held
            log.warning(
                "audit.demotions.held",
                audit_run_id=run.id,
                held=held,
                approved=approved,
                max_ratio=settings.audit.max_demotion_ratio,
            )
            return AuditState.HELD
    actor = _actor(run)
    after_id = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = await repository.missing_batch(
                session, run.id, started_at, after_id=after_id, limit=DEMOTION_BATCH
            )
            if not batch:
                break
            for client_id, account_id in batch:
                outcome = await _demote(session, account_id, actor)
                if outcome:
                    tally.demoted += 1
                    tally.changed += 1
                after_id = client_id
    if tally.demoted:
        log.info("audit.demotions.applied", audit_run_id=run.id, demoted=tally.demoted)
    return AuditState.COMPLETED


async def _demote(session: AsyncSession, account_id: str, actor: clients_service.Actor) -> bool:
    outcome = await clients_service.record_evidence(
        session,
        account_id,
        Evidence(Membership.NOT_OURS_PARTNER_UNKNOWN, VerifiedVia.PARTNER_LIST, REASON_MISSING),
        actor,
    )
    return outcome.changed


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    run: AuditRun,
    meter: CallMeter,
    tally: _Tally,
    state: AuditState,
    *,
    error: str | None = None,
) -> AuditRun:
    async with sessionmaker() as session, session.begin():
        await _save_progress(session, run, meter, tally)
        row = await repository.get(session, run.id)
        assert row is not None
        row.state = state.value
        row.finished_at = utcnow()
        row.duration_ms = round((time.monotonic() - tally.started) * 1000)
        row.error = error or run.error
        await repository.clear_seen(session, run.id)
        await session.flush()
    AUDIT_RUNS.labels(state=state.value).inc()
    log_event = log.warning if state in (AuditState.FAILED, AuditState.INCOMPLETE) else log.info
    log_event(
        f"audit.run.{state.value}",
        audit_run_id=row.id,
        pages_read=row.pages_read,
        ctct_calls=row.ctct_calls,
        clients_seen=row.clients_seen,
        clients_added=row.clients_added,
        clients_changed=row.clients_changed,
        demotions=row.demotions,
        held_demotions=row.held_demotions,
        duration_ms=row.duration_ms,
        error=row.error,
    )
    return row


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    *,
    trigger: AuditTrigger,
    requested_by: str | None = None,
    scheduled_for: datetime | None = None,
    run_id: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AuditRun | None:
    """Start (or claim the queued `run_id`) and carry one run to its end; None if not started."""
    if run_id is not None:
        run = await claim_queued(sessionmaker, run_id)
    else:
        run = await open_run(
            sessionmaker, trigger=trigger, requested_by=requested_by, scheduled_for=scheduled_for
        )
    if run is None:
        log.info("audit.run.skipped", audit_run_id=run_id, trigger=trigger.value)
        return None
    ctct, meter = build_audit_client(settings.ctct, engine=engine, transport=transport)
    async with ctct:
        return await execute(sessionmaker, settings, run, ctct, meter)


# Held demotions


async def confirm_demotions(session: AsyncSession, run_id: int, *, by: str) -> AuditRun:
    """A person confirms a held run's demotions: each still-missing client is demoted now."""
    run = await _held(session, run_id)
    assert run.started_at is not None
    actor = clients_service.Actor(EventSource.AUDIT, name=by, audit_run_id=run.id)
    after = 0
    applied = 0
    while True:
        batch = await repository.held_batch(
            session, run.id, after_client_id=after, limit=DEMOTION_BATCH
        )
        if not batch:
            break
        for held in batch:
            after = held.client_id
            client = await clients_service.get(session, held.encoded_account_id)
            still_missing = client.status == ClientStatus.APPROVED.value and (
                client.verified_at is None or client.verified_at < run.started_at
            )
            held.applied = still_missing and await _demote(session, held.encoded_account_id, actor)
            applied += int(bool(held.applied))
    return await _resolve(session, run, HeldResolution.CONFIRMED, by=by, applied=applied)


async def reject_demotions(session: AsyncSession, run_id: int, *, by: str) -> AuditRun:
    """A person rejects a held run's demotions: nobody is demoted."""
    run = await _held(session, run_id)
    await repository.resolve_unapplied(session, run.id)
    return await _resolve(session, run, HeldResolution.REJECTED, by=by, applied=0)


async def _held(session: AsyncSession, run_id: int) -> AuditRun:
    run = await repository.get(session, run_id, for_update=True)
    if run is None:
        raise AuditNotFound(f"no audit run {run_id}")
    if run.state != AuditState.HELD.value or run.held_resolution is not None:
        raise NothingHeld(f"audit run {run_id} is {run.state} and holds no demotions to resolve")
    return run


async def _resolve(
    session: AsyncSession, run: AuditRun, resolution: HeldResolution, *, by: str, applied: int
) -> AuditRun:
    run.held_resolution = resolution.value
    run.resolved_by = by
    run.resolved_at = utcnow()
    run.demotions += applied
    run.clients_changed += applied
    run.state = AuditState.COMPLETED.value
    await session.flush()
    log.info(
        f"audit.demotions.{resolution.value}",
        audit_run_id=run.id,
        resolved_by=by,
        applied=applied,
    )
    return run


# Reading


async def get_run(session: AsyncSession, run_id: int) -> AuditRun:
    """The run, or a 404 problem."""
    run = await repository.get(session, run_id)
    if run is None:
        raise AuditNotFound(f"no audit run {run_id}")
    return run


async def run_standalone(settings: Settings, *, requested_by: str | None) -> AuditRun | None:
    """One run in this process (the CLI): its own engine, closed at the end."""
    from app.db import create_engine, create_sessionmaker

    assert settings.database.url is not None
    engine = create_engine(settings.database.url, pool_size=2, max_overflow=2)
    try:
        return await run_once(
            create_sessionmaker(engine),
            engine,
            settings,
            trigger=AuditTrigger.CLI,
            requested_by=requested_by,
        )
    finally:
        await engine.dispose()


def summary(run: AuditRun) -> str:
    """A few human lines about a finished run (the CLI prints them)."""
    lines = [
        f"audit run {run.id}: {run.state}",
        f"  pages read {run.pages_read}; CTCT calls {run.ctct_calls} "
        f"({run.list_calls} list, {run.token_calls} token)",
        f"  clients seen {run.clients_seen}, added {run.clients_added}, "
        f"changed {run.clients_changed}, demoted {run.demotions}, held {run.held_demotions}",
        f"  duration {run.duration_ms} ms",
    ]
    if run.error:
        lines.append(f"  error: {run.error}")
    if run.state == AuditState.HELD.value:
        lines.append(
            f"  demotions held: confirm with POST /v1/audits/{run.id}/confirm-demotions "
            f"or reject with POST /v1/audits/{run.id}/reject-demotions"
        )
    return "\n".join(lines)
