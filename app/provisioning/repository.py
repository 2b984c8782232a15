"""SQL for provisioning requests (idempotent insert, claiming with leases, the dashboard list) and
for the partner-list reads that answer the requests whose outcome is unknown.

Leases and open questions are stamped with the database's clock (`db_now`), so every process
compares them against one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.provisioning.models import (
    TERMINAL_STATES,
    PartnerListRead,
    ProvisioningRequest,
    ReadState,
    RequestState,
)


async def db_now(session: AsyncSession) -> datetime:
    """The database's clock (its transaction timestamp): the one clock of leases."""
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    return now


async def insert_unless_key_exists(session: AsyncSession, values: dict[str, object]) -> int | None:
    """Insert a request; None when the API key already used this idempotency key.

    A concurrent insert of the same key waits for the other transaction and then does nothing,
    so exactly one request exists per key however many callers race.
    """
    statement = (
        insert(ProvisioningRequest)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["api_key_id", "idempotency_key"])
        .returning(ProvisioningRequest.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def by_key(
    session: AsyncSession, api_key_id: int, idempotency_key: str
) -> ProvisioningRequest | None:
    statement = select(ProvisioningRequest).where(
        ProvisioningRequest.api_key_id == api_key_id,
        ProvisioningRequest.idempotency_key == idempotency_key,
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get(
    session: AsyncSession, request_id: int, *, for_update: bool = False
) -> ProvisioningRequest | None:
    statement = select(ProvisioningRequest).where(ProvisioningRequest.id == request_id)
    if for_update:
        statement = statement.with_for_update()
    return (
        await session.execute(statement.execution_options(populate_existing=True))
    ).scalar_one_or_none()


async def lock_claimable(
    session: AsyncSession, request_id: int, now: datetime
) -> ProvisioningRequest | None:
    """The request, locked, if it is pending, due and not waiting for a partner-list read;
    None if busy elsewhere or not claimable."""
    statement = (
        select(ProvisioningRequest)
        .where(
            ProvisioningRequest.id == request_id,
            ProvisioningRequest.state == RequestState.PENDING.value,
            ProvisioningRequest.next_attempt_at <= now,
            ProvisioningRequest.unknown_since.is_(None),
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_expired_leases(
    session: AsyncSession, now: datetime, limit: int = 100
) -> Sequence[ProvisioningRequest]:
    """In-flight requests whose sender vanished (lease expired), locked for this transaction."""
    statement = (
        select(ProvisioningRequest)
        .where(
            ProvisioningRequest.state == RequestState.IN_FLIGHT.value,
            ProvisioningRequest.lease_expires_at < now,
        )
        .order_by(ProvisioningRequest.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


async def due_without_job(
    session: AsyncSession, due_before: datetime, queueing_lock_prefix: str, limit: int = 100
) -> Sequence[int]:
    """Pending requests overdue with no job waiting for them (a lost or aborted job)."""
    statement = text(
        """
        SELECT r.id FROM provisioning_request r
        WHERE r.state = 'pending' AND r.next_attempt_at < :due_before
          AND NOT EXISTS (
            SELECT 1 FROM procrastinate_jobs j
            WHERE j.queueing_lock = :prefix || r.id::text AND j.status = 'todo'
          )
        ORDER BY r.id
        LIMIT :limit
        FOR UPDATE OF r SKIP LOCKED
        """
    )
    rows = await session.execute(
        statement, {"due_before": due_before, "prefix": queueing_lock_prefix, "limit": limit}
    )
    return [row[0] for row in rows]


async def release_idempotency_keys(session: AsyncSession, created_before: datetime) -> int:
    """Forget the keys of finished requests older than the TTL; the rows stay as history."""
    statement = (
        update(ProvisioningRequest)
        .where(
            ProvisioningRequest.idempotency_key.is_not(None),
            ProvisioningRequest.state.in_([state.value for state in TERMINAL_STATES]),
            ProvisioningRequest.created_at < created_before,
        )
        .values(idempotency_key=None)
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    oldest_created_at: datetime | None


async def outbox_stats(session: AsyncSession) -> OutboxStats:
    """How many requests still wait to be sent, and since when."""
    statement = select(func.count(), func.min(ProvisioningRequest.created_at)).where(
        ProvisioningRequest.state.in_([RequestState.PENDING.value, RequestState.IN_FLIGHT.value])
    )
    count, oldest = (await session.execute(statement)).one()
    return OutboxStats(depth=int(count), oldest_created_at=oldest)


async def page(
    session: AsyncSession, *, state: RequestState | None, before_id: int | None, limit: int
) -> Sequence[ProvisioningRequest]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    statement = select(ProvisioningRequest).order_by(ProvisioningRequest.id.desc()).limit(limit)
    if state is not None:
        statement = statement.where(ProvisioningRequest.state == state.value)
    if before_id is not None:
        statement = statement.where(ProvisioningRequest.id < before_id)
    return (await session.execute(statement)).scalars().all()


async def erase_stale_passwords(session: AsyncSession, finished_before: datetime) -> int:
    """Passwords kept for a person's retry are erased once the request ended long enough ago."""
    statement = (
        update(ProvisioningRequest)
        .where(
            ProvisioningRequest.password_ciphertext.is_not(None),
            ProvisioningRequest.state.in_([state.value for state in TERMINAL_STATES]),
            ProvisioningRequest.finished_at < finished_before,
        )
        .values(password_ciphertext=None)
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


# Requests waiting for a partner-list read ---------------------------------------------------


def _waiting(before: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        ProvisioningRequest.state == RequestState.PENDING.value,
        ProvisioningRequest.unknown_since.is_not(None),
        ProvisioningRequest.unknown_since < before,
    )


async def lock_waiting_for_logins(
    session: AsyncSession, *, before: datetime, logins: Sequence[str]
) -> Sequence[ProvisioningRequest]:
    """Requests waiting since before `before` whose login name (lower case) is in `logins`."""
    if not logins:
        return []
    statement = (
        select(ProvisioningRequest)
        .where(*_waiting(before), func.lower(ProvisioningRequest.login_name).in_(list(logins)))
        .order_by(ProvisioningRequest.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


async def lock_waiting(
    session: AsyncSession, *, before: datetime, after_id: int, limit: int
) -> Sequence[ProvisioningRequest]:
    """The next `limit` requests (by id) waiting since before `before`, locked."""
    statement = (
        select(ProvisioningRequest)
        .where(*_waiting(before), ProvisioningRequest.id > after_id)
        .order_by(ProvisioningRequest.id)
        .limit(limit)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


async def any_waiting(session: AsyncSession, *, before: datetime) -> bool:
    """Whether any request waits for a read that began after its question (and before this)."""
    statement = select(ProvisioningRequest.id).where(*_waiting(before)).limit(1)
    return (await session.execute(statement)).first() is not None


async def lock_waiting_past_deadline(
    session: AsyncSession, now: datetime, limit: int = 500
) -> Sequence[ProvisioningRequest]:
    """Requests waiting for a read although their deadline has passed, locked."""
    statement = (
        select(ProvisioningRequest)
        .where(*_waiting(now), ProvisioningRequest.deadline_at <= now)
        .order_by(ProvisioningRequest.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalars().all()


# Partner-list reads -------------------------------------------------------------------------


async def read_in_state(
    session: AsyncSession, state: ReadState, *, for_update: bool = False
) -> PartnerListRead | None:
    """The queued or the running read (there is at most one of each)."""
    statement = (
        select(PartnerListRead)
        .where(PartnerListRead.state == state.value)
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_read(
    session: AsyncSession, read_id: int, *, for_update: bool = False
) -> PartnerListRead | None:
    statement = (
        select(PartnerListRead)
        .where(PartnerListRead.id == read_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_queued_read(session: AsyncSession) -> int | None:
    """Queue a read unless one is queued already; its id if this call queued it."""
    statement = (
        insert(PartnerListRead)
        .values(state=ReadState.QUEUED.value)
        .on_conflict_do_nothing()
        .returning(PartnerListRead.id)
    )
    read_id: int | None = (await session.execute(statement)).scalar_one_or_none()
    return read_id


async def delete_read(session: AsyncSession, read_id: int) -> None:
    """Forget a read queued by mistake (one already running answers its requester)."""
    await session.execute(delete(PartnerListRead).where(PartnerListRead.id == read_id))


async def last_read_start(session: AsyncSession) -> datetime | None:
    """When the most recent read began."""
    statement = select(func.max(PartnerListRead.started_at))
    started: datetime | None = (await session.execute(statement)).scalar_one()
    return started


async def unfinished_reads(session: AsyncSession) -> int:
    """How many reads are queued or running."""
    statement = select(func.count()).where(
        PartnerListRead.state.in_([ReadState.QUEUED.value, ReadState.RUNNING.value])
    )
    return int((await session.execute(statement)).scalar_one())
