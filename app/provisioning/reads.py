"""Partner-list reads: one reading of our partner list, shared by the cluster, answers every
provisioning request whose outcome is unknown (DESIGN §5, "Unknown outcomes").

A request whose attempt may have created the account waits (`unknown_since`) for a read that
*began* after that moment, and asks for one (`request_read`). At most one read is queued and one
running. A queued read starts `PROVISION_RECONCILE_INTERVAL_SECONDS` after it was asked for at the
soonest (the outcomes of one bad minute share it) and as long after the previous read began, so
N accounts cost ⌈N/50⌉ list calls per read however many requests wait.

A running read is held like a provisioning request: a claim takes the next fencing token and a
lease (database clock); every page is saved under the token (`advance`) and extends the lease.
A reader that dies is replaced once its lease ends and goes on from the page after the last one
saved; a stale reader's progress is refused. Each function takes the caller's session and never
commits; `read_flow` calls CTCT between them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.backoff import backoff_delay
from app.kit.jobs import defer_in_transaction, locks_without_live_job
from app.provisioning import repository
from app.provisioning.models import PartnerListRead, ReadState

log = structlog.get_logger(__name__)

RECONCILE_TASK = "provisioning.reconcile"
RECONCILE_QUEUE = "provisioning"
RECONCILE_LOCK = "provisioning-reconcile"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ReadClaim:
    """One reader's hold on the running read: its token, where it starts, what it had spent."""

    read_id: int
    fence: int
    started_at: datetime
    next_href: str | None
    list_calls: int


async def defer_reader(session: AsyncSession, *, at: datetime) -> None:
    """Make sure the reader's job runs by `at` (one waits at a time; asking brings it forward)."""
    await defer_in_transaction(
        session,
        task=RECONCILE_TASK,
        queue=RECONCILE_QUEUE,
        queueing_lock=RECONCILE_LOCK,
        schedule_at=at,
    )


async def request_read(session: AsyncSession, *, since: datetime) -> None:
    """Make sure a read that begins after `since` will run (a request's outcome is unknown)."""
    if await _answered_by_running(session, since):
        return
    queued = await repository.insert_queued_read(session)
    if queued is None:
        return
    # The insert may have waited for a reader starting the queued read before it: look again.
    if await _answered_by_running(session, since):
        await repository.delete_read(session, queued)
        return
    log.info("provisioning.read.queued", read_id=queued)
    await defer_reader(session, at=await repository.db_now(session))


async def _answered_by_running(session: AsyncSession, since: datetime) -> bool:
    running = await repository.read_in_state(session, ReadState.RUNNING)
    return running is not None and running.started_at is not None and running.started_at > since


async def take(
    session: AsyncSession, *, interval: timedelta, lease: timedelta
) -> ReadClaim | datetime | None:
    """Claim the read to carry on now (the running one, else the queued one once due).

    Otherwise when to look again (the job is moved there), or None when no read is wanted.
    """
    now = await repository.db_now(session)
    running = await repository.read_in_state(session, ReadState.RUNNING, for_update=True)
    if running is not None and running.started_at is not None:
        later = max(running.lease_expires_at or now, running.resume_at or now)
        if later > now:
            await defer_reader(session, at=later)
            return later
        if await repository.any_waiting(session, before=running.started_at):
            return await _claim(session, running, now, lease)
        _drop(running, now)
        await session.flush()
    queued = await repository.read_in_state(session, ReadState.QUEUED, for_update=True)
    if queued is None:
        return None
    if not await repository.any_waiting(session, before=now):
        _drop(queued, now)
        return None
    last = await repository.last_read_start(session)
    due = max(queued.requested_at + interval, (last + interval) if last else now)
    if due > now:
        await defer_reader(session, at=due)
        return due
    queued.state = ReadState.RUNNING.value
    queued.started_at = now
    log.info("provisioning.read.started", read_id=queued.id)
    return await _claim(session, queued, now, lease)


def _drop(read: PartnerListRead, now: datetime) -> None:
    """Nobody waits for this read any more: it stops, and costs nothing more."""
    read.state = ReadState.DROPPED.value
    read.finished_at = now
    read.lease_expires_at = None
    log.info("provisioning.read.dropped", read_id=read.id, pages=read.pages_read)


async def _claim(
    session: AsyncSession, read: PartnerListRead, now: datetime, lease: timedelta
) -> ReadClaim:
    read.fence += 1
    read.lease_expires_at = now + lease
    read.resume_at = None
    await session.flush()
    # A watchdog: if this reader dies, the job runs again when its lease ends.
    await defer_reader(session, at=read.lease_expires_at)
    assert read.started_at is not None
    return ReadClaim(read.id, read.fence, read.started_at, read.next_href, read.list_calls)


async def _held(session: AsyncSession, claim: ReadClaim) -> PartnerListRead | None:
    """The read, locked, if this claim still holds it."""
    read = await repository.get_read(session, claim.read_id, for_update=True)
    if read is None or read.state != ReadState.RUNNING.value or read.fence != claim.fence:
        log.warning("provisioning.read.claim_lost", read_id=claim.read_id, fence=claim.fence)
        return None
    return read


async def advance(
    session: AsyncSession,
    claim: ReadClaim,
    *,
    next_href: str | None,
    accounts: int,
    list_calls: int,
    lease: timedelta,
) -> PartnerListRead | None:
    """Save one page read under the claim and extend its lease; None if the claim was lost."""
    read = await _held(session, claim)
    if read is None:
        return None
    read.next_href = next_href
    read.pages_read += 1
    read.accounts_seen += accounts
    read.list_calls = claim.list_calls + list_calls
    read.lease_expires_at = await repository.db_now(session) + lease
    await session.flush()
    return read


async def complete(
    session: AsyncSession, claim: ReadClaim, *, list_calls: int
) -> PartnerListRead | None:
    """The listing reached its end: the read is complete, the queued one may follow."""
    read = await _held(session, claim)
    if read is None:
        return None
    now = await repository.db_now(session)
    read.state = ReadState.COMPLETED.value
    read.finished_at = now
    read.lease_expires_at = None
    read.list_calls = claim.list_calls + list_calls
    await session.flush()
    if await repository.read_in_state(session, ReadState.QUEUED) is not None:
        await defer_reader(session, at=now)
    log.info(
        "provisioning.read.completed",
        read_id=read.id,
        pages=read.pages_read,
        list_calls=read.list_calls,
        accounts=read.accounts_seen,
    )
    return read


async def pause(
    session: AsyncSession,
    claim: ReadClaim,
    *,
    error: str,
    list_calls: int,
    base_seconds: float,
    cap_seconds: float,
    not_before: datetime | None = None,
) -> bool:
    """CTCT stopped the listing: go on from the same page after a backoff (or `not_before`)."""
    read = await _held(session, claim)
    if read is None:
        return False
    now = await repository.db_now(session)
    read.failures += 1
    read.last_error = error[:MAX_ERROR_CHARS]
    read.list_calls = claim.list_calls + list_calls
    delay = backoff_delay(
        read.failures - 1,
        base=base_seconds,
        cap=max(cap_seconds, base_seconds),
        floor=0.5 * base_seconds,
    )
    read.resume_at = max(now + timedelta(seconds=delay), not_before or now)
    read.lease_expires_at = None
    await session.flush()
    await defer_reader(session, at=read.resume_at)
    log.warning(
        "provisioning.read.paused",
        read_id=read.id,
        failures=read.failures,
        resume_in_seconds=round((read.resume_at - now).total_seconds(), 3),
    )
    return True


async def release(session: AsyncSession, claim: ReadClaim, *, list_calls: int) -> None:
    """The reader stops (shutdown): another may go on at once from the last page saved."""
    read = await _held(session, claim)
    if read is None:
        return
    now = await repository.db_now(session)
    read.lease_expires_at = None
    read.list_calls = claim.list_calls + list_calls
    await session.flush()
    await defer_reader(session, at=now + timedelta(seconds=random.uniform(0.5, 1.5)))  # noqa: S311


async def restore_lost_job(session: AsyncSession) -> bool:
    """A queued or running read whose job is gone (it failed, its worker died) gets one."""
    if not await repository.unfinished_reads(session):
        return False
    if not await locks_without_live_job(session, [RECONCILE_LOCK]):
        return False
    await defer_reader(session, at=await repository.db_now(session))
    log.warning("provisioning.read.job_restored")
    return True
