"""The audit's door: queue a run, read runs, and resolve the demotions a run held.

Every function takes the caller's session and never commits. The run itself, which opens its own
transactions page by page, is the flow in `app.audit.runner`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository
from app.audit.errors import AuditInProgress, AuditNotFound, NothingHeld
from app.audit.models import AuditRun, AuditState, AuditTrigger, HeldResolution
from app.audit.schemas import AuditRunDetail, AuditRunOut, HeldDemotionOut
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership
from app.clients.models import EventSource, VerifiedVia
from app.db import utcnow
from app.kit import jobs
from app.kit.pagination import CursorCodec, Page

log = structlog.get_logger(__name__)

# The worker's job for a queued run (defined in app/worker/audit_jobs.py).
RUN_TASK = "audit.run"
QUEUE = "audit"
QUEUEING_LOCK = "audit-run"
DEMOTION_BATCH = 200
# A running run beats this often, whatever it waits on (app.audit.runner); one silent for
# HEARTBEAT_TIMEOUT lost its process, and the slot is freed for the next period or a person.
HEARTBEAT_INTERVAL = timedelta(seconds=5)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# A queued run no worker claimed for this long expires (its job may wait behind a long queue).
QUEUED_TIMEOUT = timedelta(minutes=10)
REASON_MISSING = "missing_from_partner_list"


def run_actor(run: AuditRun, *, name: str | None = None) -> clients_service.Actor:
    """Who changes clients on a run's behalf: the run itself, or the person resolving it."""
    return clients_service.Actor(
        EventSource.AUDIT, name=name or f"audit-{run.id}", audit_run_id=run.id
    )


async def demote_missing(
    session: AsyncSession, account_id: str, actor: clients_service.Actor, *, since: datetime
) -> bool:
    """Demote an approved client a complete listing missed, unless confirmed `since` then."""
    return await clients_service.demote_unless_confirmed(
        session,
        account_id,
        Evidence(Membership.NOT_OURS_PARTNER_UNKNOWN, VerifiedVia.PARTNER_LIST, REASON_MISSING),
        actor,
        since=since,
    )


# Starting runs


def run_job_lock(run_id: int) -> str:
    """The queueing lock of a queued run's job."""
    return f"{QUEUEING_LOCK}-{run_id}"


async def expire_stranded(session: AsyncSession) -> int:
    """Free the slot a stranded run holds: a running run whose process stopped beating, a queued
    one whose job is gone (it failed before claiming the run) or that nobody claimed in time."""
    now = utcnow()
    expired = await repository.abandon_stale(session, now - HEARTBEAT_TIMEOUT, now)
    for run in await repository.queued(session):
        if run.created_at < now - QUEUED_TIMEOUT:
            reason = f"expired: no worker claimed it within {QUEUED_TIMEOUT}"
        elif await jobs.locks_without_live_job(session, [run_job_lock(run.id)]):
            reason = "expired: its job ended before claiming the run"
        else:
            continue
        run.state = AuditState.FAILED.value
        run.finished_at = now
        run.error = reason
        expired += 1
        log.warning("audit.run.expired", audit_run_id=run.id, reason=reason)
    await session.flush()
    return expired


async def request_run(session: AsyncSession, *, requested_by: str | None) -> AuditRun:
    """Queue a run for the worker (in the caller's transaction); 409 if one is active."""
    await expire_stranded(session)
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
    await jobs.defer_in_transaction(
        session,
        task=RUN_TASK,
        queue=QUEUE,
        queueing_lock=run_job_lock(run.id),
        run_id=run.id,
    )
    log.info("audit.run.queued", audit_run_id=run.id, requested_by=requested_by)
    return run


# Reading


async def get_run(session: AsyncSession, run_id: int) -> AuditRun:
    """The run, or a 404 problem."""
    run = await repository.get(session, run_id)
    if run is None:
        raise AuditNotFound(f"no audit run {run_id}")
    return run


async def last_run(session: AsyncSession) -> AuditRun | None:
    """The newest run, whatever its state."""
    runs = await repository.page(session, limit=1, before_id=None)
    return runs[0] if runs else None


async def list_runs(
    session: AsyncSession,
    cursors: CursorCodec,
    *,
    state: AuditState | None,
    cursor: str | None,
    limit: int,
) -> Page[AuditRunOut]:
    """Runs newest first, filtered by state."""
    scope = ["audits", state.value if state else None]
    after = cursors.decode(scope, cursor)
    runs = await repository.page(
        session,
        limit=limit + 1,
        before_id=after[0] if after else None,
        state=state.value if state else None,
    )
    return cursors.page(
        runs,
        limit=limit,
        scope=scope,
        position_of=lambda run: (run.id,),
        item=AuditRunOut.model_validate,
    )


async def run_detail(
    session: AsyncSession, cursors: CursorCodec, run_id: int, *, cursor: str | None, limit: int
) -> AuditRunDetail:
    """The run with a page of the demotions it held, by client id."""
    run = await get_run(session, run_id)
    scope = ["audit-held", run.id]
    after = cursors.decode(scope, cursor)
    held = await repository.held_page(
        session, run.id, limit=limit + 1, after_client_id=after[0] if after else None
    )
    return AuditRunDetail(
        **AuditRunOut.model_validate(run).model_dump(exclude={"ctct_calls"}),
        held=cursors.page(
            held,
            limit=limit,
            scope=scope,
            position_of=lambda row: (row.client_id,),
            item=HeldDemotionOut.model_validate,
        ),
    )


# Held demotions


async def confirm_demotions(session: AsyncSession, run_id: int, *, by: str) -> AuditRun:
    """A person confirms a held run's demotions: each still-missing client is demoted now."""
    run = await _held(session, run_id)
    assert run.started_at is not None
    actor = run_actor(run, name=by)
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
            held.applied = await demote_missing(
                session, held.encoded_account_id, actor, since=run.started_at
            )
            applied += int(held.applied)
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
