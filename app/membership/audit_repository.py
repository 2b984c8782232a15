"""SQL for audit runs, the ids a run saw, and held demotions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import OPEN_TRANSFER_STATES, Client, ClientStatus, TransferRequest
from app.membership.audit_models import (
    ACTIVE_STATES,
    AuditHeldDemotion,
    AuditRun,
    AuditSeen,
    AuditState,
)


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
    session: AsyncSession, *, limit: int, before_id: int | None, state: str | None
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


@dataclass(frozen=True)
class KnownClient:
    encoded_account_id: str
    status: str
    site_owner_name: str | None
    organization_name: str | None
    billing_status: str | None
    has_open_transfer: bool = False


async def known(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, KnownClient]:
    """The clients we already have among `account_ids` (and whether a transfer is open)."""
    open_transfer = (
        select(TransferRequest.id)
        .where(
            TransferRequest.client_id == Client.id,
            TransferRequest.state.in_([state.value for state in OPEN_TRANSFER_STATES]),
        )
        .exists()
    )
    statement = select(
        Client.encoded_account_id,
        Client.status,
        Client.site_owner_name,
        Client.organization_name,
        Client.billing_status,
        open_transfer,
    ).where(Client.encoded_account_id.in_(list(account_ids)))
    rows = (await session.execute(statement)).all()
    return {row[0]: KnownClient(*row) for row in rows}


async def confirm_approved(
    session: AsyncSession, rows: Sequence[dict[str, Any]], now: datetime
) -> int:
    """Approved clients seen in the list: refresh verification and mirrored attributes at once.

    Only rows still `approved` are touched; the version is bumped for optimistic concurrency.
    """
    if not rows:
        return 0
    statement = text(
        """
        UPDATE client AS c SET
            verified_at = :now,
            verified_via = 'partner_list',
            evidence_status = 'approved',
            site_owner_name = COALESCE(v.site_owner_name, c.site_owner_name),
            organization_name = COALESCE(v.organization_name, c.organization_name),
            billing_status = COALESCE(v.billing_status, c.billing_status),
            updated_at = :now,
            version = c.version + 1
        FROM unnest(
            CAST(:ids AS varchar[]), CAST(:owners AS text[]),
            CAST(:orgs AS text[]), CAST(:billing AS varchar[])
        ) AS v(encoded_account_id, site_owner_name, organization_name, billing_status)
        WHERE c.encoded_account_id = v.encoded_account_id AND c.status = 'approved'
        """
    )
    result = await session.execute(
        statement,
        {
            "now": now,
            "ids": [row["encoded_account_id"] for row in rows],
            "owners": [row.get("site_owner_name") for row in rows],
            "orgs": [row.get("organization_name") for row in rows],
            "billing": [row.get("billing_status") for row in rows],
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def count_approved(session: AsyncSession) -> int:
    statement = select(func.count()).where(Client.status == ClientStatus.APPROVED.value)
    return int((await session.execute(statement)).scalar_one())


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
    """The next `limit` missing clients by id, as (id, encoded_account_id)."""
    statement = (
        select(Client.id, Client.encoded_account_id)
        .where(*_missing(run_id, started_at), Client.id > after_id)
        .order_by(Client.id)
        .limit(limit)
        .with_for_update(of=Client)
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
    session: AsyncSession, run_id: int, *, limit: int, offset: int
) -> Sequence[AuditHeldDemotion]:
    statement = (
        select(AuditHeldDemotion)
        .where(AuditHeldDemotion.audit_run_id == run_id)
        .order_by(AuditHeldDemotion.client_id)
        .limit(limit)
        .offset(offset)
    )
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
