"""SQL for audit runs, the ids a run saw, and held demotions.

The clients a complete listing missed are found by joining `audit_seen` with `client` (a read);
every change to a client goes through `app.clients.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import (
    ACTIVE_STATES,
    AuditHeldDemotion,
    AuditRun,
    AuditSeen,
    AuditState,
)
from app.clients.models import Client, ClientStatus


async def insert_run(
    session: AsyncSession,
    *,
    state: AuditState,
    trigger: str,
    requested_by: str | None,
    scheduled_for: datetime | None = None,
) -> AuditRun | None:
    """A new run, or None when one is already active (or this period already has its run)."""
    statement = (
        insert(AuditRun)
        .values(
            state=state.value,
            trigger=trigger,
            requested_by=requested_by,
            scheduled_for=scheduled_for,
        )
        .on_conflict_do_nothing()
        .returning(AuditRun.id)
    )
    run_id = (await session.execute(statement)).scalar_one_or_none()
    if run_id is None:
        return None
    return await get(session, run_id)


async def get(session: AsyncSession, run_id: int, *, for_update: bool = False) -> AuditRun | None:
    statement = (
        select(AuditRun).where(AuditRun.id == run_id).execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def active(session: AsyncSession) -> AuditRun | None:
    """The run queued or running now, if any."""
    statement = select(AuditRun).where(AuditRun.state.in_([s.value for s in ACTIVE_STATES]))
    return (await session.execute(statement)).scalars().first()


async def page(
    session: AsyncSession, *, limit: int, before_id: int | None, state: str | None = None
) -> Sequence[AuditRun]:
    """Runs newest first, `limit` of them, older than `before_id` when given."""
    statement = select(AuditRun).order_by(AuditRun.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(AuditRun.id < before_id)
    if state is not None:
        statement = statement.where(AuditRun.state == state)
    return (await session.execute(statement)).scalars().all()


async def abandon_stale(session: AsyncSession, heartbeat_before: datetime, now: datetime) -> int:
    """Runs whose runner stopped beating (a crashed process) end `failed`, freeing the slot."""
    statement = (
        update(AuditRun)
        .where(
            AuditRun.state == AuditState.RUNNING.value,
            func.coalesce(AuditRun.heartbeat_at, AuditRun.created_at) < heartbeat_before,
        )
        .values(state=AuditState.FAILED.value, finished_at=now, error="abandoned: no heartbeat")
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def beat(session: AsyncSession, run_id: int, now: datetime) -> None:
    """A running run's process is alive."""
    await session.execute(
        update(AuditRun)
        .where(AuditRun.id == run_id, AuditRun.state == AuditState.RUNNING.value)
        .values(heartbeat_at=now)
    )


async def queued(session: AsyncSession) -> Sequence[AuditRun]:
    """The queued run (at most one), locked, skipped if someone else holds it."""
    statement = (
        select(AuditRun)
        .where(AuditRun.state == AuditState.QUEUED.value)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


async def relax_commit(session: AsyncSession) -> None:
    """This transaction's commit does not wait for its WAL flush (atomic, not instantly durable)."""
    await session.execute(text("SET LOCAL synchronous_commit = off"))


async def mark_seen(session: AsyncSession, run_id: int, account_ids: Sequence[str]) -> int:
    """Remember which ids this run found in the list; returns how many were new to the run."""
    if not account_ids:
        return 0
    result = await session.execute(
        text(
            "INSERT INTO audit_seen (audit_run_id, encoded_account_id) "
            "SELECT :run_id, unnest(CAST(:ids AS varchar[])) ON CONFLICT DO NOTHING"
        ),
        {"run_id": run_id, "ids": list(account_ids)},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _missing(run_id: int, started_at: datetime) -> Any:
    """Approved clients not in this run's list and not confirmed since the run began."""
    seen = select(AuditSeen.encoded_account_id).where(
        AuditSeen.audit_run_id == run_id,
        AuditSeen.encoded_account_id == Client.encoded_account_id,
    )
    return (
        Client.status == ClientStatus.APPROVED.value,
        Client.created_at < started_at,
        (Client.verified_at.is_(None)) | (Client.verified_at < started_at),
        ~seen.exists(),
    )


async def count_missing(session: AsyncSession, run_id: int, started_at: datetime) -> int:
    statement = select(func.count()).select_from(Client).where(*_missing(run_id, started_at))
    return int((await session.execute(statement)).scalar_one())


async def missing_batch(
    session: AsyncSession, run_id: int, started_at: datetime, *, after_id: int, limit: int
) -> Sequence[tuple[int, str]]:
    """The next `limit` missing clients by id, as (id, encoded_account_id).

    Not locked: `clients.service.demote_unless_confirmed` locks each and checks it again.
    """
    statement = (
        select(Client.id, Client.encoded_account_id)
        .where(*_missing(run_id, started_at), Client.id > after_id)
        .order_by(Client.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


async def hold_missing(session: AsyncSession, run_id: int, started_at: datetime) -> int:
    """Copy every missing client into the run's held demotions (in the database, not memory)."""
    source = select(
        literal(run_id, BigInteger),
        Client.id,
        Client.encoded_account_id,
    ).where(*_missing(run_id, started_at))
    statement = insert(AuditHeldDemotion).from_select(
        ["audit_run_id", "client_id", "encoded_account_id"], source
    )
    await session.execute(statement)
    count = select(func.count()).where(AuditHeldDemotion.audit_run_id == run_id)
    return int((await session.execute(count)).scalar_one())


async def held_batch(
    session: AsyncSession, run_id: int, *, after_client_id: int, limit: int
) -> Sequence[AuditHeldDemotion]:
    """Unresolved held demotions of a run, by client id."""
    statement = (
        select(AuditHeldDemotion)
        .where(
            AuditHeldDemotion.audit_run_id == run_id,
            AuditHeldDemotion.applied.is_(None),
            AuditHeldDemotion.client_id > after_client_id,
        )
        .order_by(AuditHeldDemotion.client_id)
        .limit(limit)
    )
    return (await session.execute(statement)).scalars().all()


async def held_page(
    session: AsyncSession, run_id: int, *, limit: int, after_client_id: int | None
) -> Sequence[AuditHeldDemotion]:
    """A run's held demotions by client id, `limit` of them, after `after_client_id` if given."""
    statement = (
        select(AuditHeldDemotion)
        .where(AuditHeldDemotion.audit_run_id == run_id)
        .order_by(AuditHeldDemotion.client_id)
        .limit(limit)
    )
    if after_client_id is not None:
        statement = statement.where(AuditHeldDemotion.client_id > after_client_id)
    return (await session.execute(statement)).scalars().all()


async def resolve_unapplied(session: AsyncSession, run_id: int) -> None:
    """Mark every still-unresolved held demotion of a run as not applied."""
    await session.execute(
        update(AuditHeldDemotion)
        .where(AuditHeldDemotion.audit_run_id == run_id, AuditHeldDemotion.applied.is_(None))
        .values(applied=False)
    )


async def clear_seen(session: AsyncSession, run_id: int) -> None:
    """Drop a finished run's scratch list of seen ids."""
    await session.execute(delete(AuditSeen).where(AuditSeen.audit_run_id == run_id))
