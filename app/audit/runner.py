"""The audit run, a flow: it opens its own short transactions around CTCT's partner list.

A run pages `GET /partner/accounts?limit=50` at background priority, so N clients cost ⌈N/50⌉
list calls. Pages are read ahead (`app.audit.pipeline`) and each is applied in its own short
transaction (`app.audit.applier`): no CTCT call waits inside a transaction.

Only when the listing completed are approved clients missing from it demoted (evidence "not
ours, partner unknown"; a billing approval is untouched by the rules). A run stopped by a CTCT
error or the daily budget ends `incomplete` and demotes nobody. If the demotions would exceed
`AUDIT_MAX_DEMOTION_RATIO` of approved clients, the run ends `held` with the list kept in
`audit_held_demotion` until a person confirms or rejects it (`app.audit.service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import repository
from app.audit import service as audit_service
from app.audit.applier import Applied, apply_page
from app.audit.models import AuditRun, AuditState, AuditTrigger
from app.audit.pipeline import read_ahead
from app.clients import mirror as clients_mirror
from app.clients import service as clients_service
from app.clients.models import ClientStatus
from app.ctct.call_meter import CallMeter, metering
from app.ctct.client import CtctClient, build_ctct_client
from app.ctct.errors import CtctError
from app.db import create_engine, create_sessionmaker, utcnow
from app.kit.metrics import AUDIT_RUNS
from app.settings import Settings
from app.webhooks import operations as webhooks_operations

log = structlog.get_logger(__name__)


@dataclass
class _Tally:
    pages: int = 0
    seen: int = 0
    added: int = 0
    changed: int = 0
    demoted: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, applied: Applied) -> None:
        self.pages += 1
        self.seen += applied.seen
        self.added += applied.added
        self.changed += applied.changed


# Starting runs


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
        await audit_service.expire_stranded(session)
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
    heartbeat = asyncio.create_task(_beat_until_cancelled(sessionmaker, run.id))
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
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


async def _beat_until_cancelled(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: int
) -> None:
    """Beat on a clock of its own: a page waiting on CTCT's budget is still a live run."""
    interval = audit_service.HEARTBEAT_INTERVAL.total_seconds()
    while True:
        await asyncio.sleep(interval)
        try:
            async with sessionmaker() as session, session.begin():
                await repository.beat(session, run_id, utcnow())
        except SQLAlchemyError as exc:
            log.warning(
                "audit.heartbeat.failed", audit_run_id=run_id, error_type=type(exc).__name__
            )


async def _read_list(
    sessionmaker: async_sessionmaker[AsyncSession],
    run: AuditRun,
    ctct: CtctClient,
    meter: CallMeter,
    tally: _Tally,
) -> bool:
    """Apply every page; False when CTCT (or our budget) stopped the listing."""
    actor = audit_service.run_actor(run)
    async with read_ahead(ctct) as next_page:
        while True:
            try:
                page = await next_page()
            except CtctError as exc:
                run.error = str(exc)[:500]
                log.warning(
                    "audit.list.stopped",
                    audit_run_id=run.id,
                    pages_read=tally.pages,
                    error_type=type(exc).__name__,
                    status=exc.status,
                )
                return False
            if page is None:
                return True
            async with sessionmaker() as session, session.begin():
                # A page's changes are re-derived by the next run if a crash loses them; not
                # waiting for the WAL flush on each of ⌈N/50⌉ commits keeps the audit at the
                # speed of the list.
                await repository.relax_commit(session)
                tally.add(await apply_page(session, run.id, page, actor))
                await _save_progress(session, run, meter, tally)


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
        approved = await clients_service.count_with_status(session, ClientStatus.APPROVED)
        missing = await repository.count_missing(session, run.id, started_at)
        row = await repository.get(session, run.id)
        assert row is not None
        row.listing_completed = True
        row.approved_before = approved
        await clients_mirror.listing_completed(
            session, source="audit", started_at=started_at, accounts=tally.seen
        )
        if missing and missing > settings.audit.max_demotion_ratio * approved:
            held = await repository.hold_missing(session, run.id, started_at)
            row.held_demotions = held
            await webhooks_operations.demotions_held(
                session,
                audit_run_id=run.id,
                held=held,
                approved=approved,
                max_ratio=settings.audit.max_demotion_ratio,
            )
            log.warning(
                "audit.demotions.held",
                audit_run_id=run.id,
                held=held,
                approved=approved,
                max_ratio=settings.audit.max_demotion_ratio,
            )
            return AuditState.HELD
    actor = audit_service.run_actor(run)
    after_id = 0
    while True:
        async with sessionmaker() as session, session.begin():
            batch = await repository.missing_batch(
                session, run.id, started_at, after_id=after_id, limit=audit_service.DEMOTION_BATCH
            )
            if not batch:
                break
            for client_id, account_id in batch:
                if await audit_service.demote_missing(session, account_id, actor, since=started_at):
                    tally.demoted += 1
                    tally.changed += 1
                after_id = client_id
    if tally.demoted:
        log.info("audit.demotions.applied", audit_run_id=run.id, demoted=tally.demoted)
    return AuditState.COMPLETED


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
    settings: Settings,
    ctct: CtctClient,
    *,
    trigger: AuditTrigger,
    requested_by: str | None = None,
    scheduled_for: datetime | None = None,
    run_id: int | None = None,
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
    # Every CTCT client counts its requests for the meter set here (`app.ctct.call_meter`).
    meter = CallMeter(token_path=httpx.URL(settings.ctct.token_url).path)
    with metering(meter):
        return await execute(sessionmaker, settings, run, ctct, meter)


async def run_with_own_engine(settings: Settings, *, requested_by: str | None) -> AuditRun | None:
    """One run in a process that has no engine yet (`partnergate audit run`); closed at the end."""
    assert settings.database.url is not None
    engine = create_engine(settings.database.url, pool_size=2, max_overflow=2)
    try:
        async with build_ctct_client(settings.ctct, engine=engine) as ctct:
            return await run_once(
                create_sessionmaker(engine),
                settings,
                ctct,
                trigger=AuditTrigger.CLI,
                requested_by=requested_by,
            )
    finally:
        await engine.dispose()
