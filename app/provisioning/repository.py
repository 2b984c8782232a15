"""SQL for provisioning requests: idempotent insert, claiming with leases, the dashboard list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState


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
    """The request, locked, if it is pending and due; None if busy elsewhere or not claimable."""
    statement = (
        select(ProvisioningRequest)
        .where(
            ProvisioningRequest.id == request_id,
            ProvisioningRequest.state == RequestState.PENDING.value,
            ProvisioningRequest.next_attempt_at <= now,
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
