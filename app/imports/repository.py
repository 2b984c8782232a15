"""SQL for imports and their rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.imports.models import ImportJob, ImportRow, ImportState

ROW_INSERT_CHUNK = 5_000
REPORT_BATCH = 1_000


async def add_job(session: AsyncSession, job: ImportJob) -> ImportJob:
    session.add(job)
    await session.flush()
    return job


async def add_rows(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    """Insert rows in chunks (one round trip per chunk, not per row)."""
    for start in range(0, len(rows), ROW_INSERT_CHUNK):
        await session.execute(insert(ImportRow), list(rows[start : start + ROW_INSERT_CHUNK]))


async def get(
    session: AsyncSession, import_id: int, *, for_update: bool = False
) -> ImportJob | None:
    statement = (
        select(ImportJob).where(ImportJob.id == import_id).execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def claim(
    session: AsyncSession, import_id: int, *, stale_before: datetime
) -> ImportJob | None:
    """The import, locked, if it is queued or running without a heartbeat since `stale_before`."""
    statement = (
        select(ImportJob)
        .where(
            ImportJob.id == import_id,
            or_(
                ImportJob.state == ImportState.QUEUED.value,
                (ImportJob.state == ImportState.RUNNING.value)
                & (ImportJob.heartbeat_at < stale_before),
            ),
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def pending_rows(session: AsyncSession, import_id: int) -> Sequence[ImportRow]:
    """The rows without an outcome yet, in file order."""
    statement = (
        select(ImportRow)
        .where(ImportRow.import_id == import_id, ImportRow.outcome.is_(None))
        .order_by(ImportRow.line)
    )
    return (await session.execute(statement)).scalars().all()


async def record_outcomes(
    session: AsyncSession,
    import_id: int,
    outcomes: Sequence[tuple[int, str, str, str | None, str | None]],
) -> None:
    """(line, outcome, detail, account id, status) for many rows in one statement."""
    if not outcomes:
        return
    lines, results, details, accounts, statuses = (
        list(column) for column in zip(*outcomes, strict=True)
    )
    await session.execute(
        text(
            """
            UPDATE import_row AS r SET
                outcome = v.outcome, detail = v.detail,
                resolved_account_id = v.account_id, status = v.status
            FROM unnest(
                CAST(:lines AS integer[]), CAST(:outcomes AS varchar[]), CAST(:details AS text[]),
                CAST(:accounts AS varchar[]), CAST(:statuses AS varchar[])
            ) AS v(line, outcome, detail, account_id, status)
            WHERE r.import_id = :import_id AND r.line = v.line
            """
        ),
        {
            "import_id": import_id,
            "lines": lines,
            "outcomes": results,
            "details": details,
            "accounts": accounts,
            "statuses": statuses,
        },
    )


async def count_outcomes(session: AsyncSession, import_id: int) -> dict[str, int]:
    statement = (
        select(ImportRow.outcome, func.count())
        .where(ImportRow.import_id == import_id, ImportRow.outcome.is_not(None))
        .group_by(ImportRow.outcome)
    )
    return {str(row[0]): int(row[1]) for row in (await session.execute(statement)).all()}


async def stream_rows(session: AsyncSession, import_id: int) -> AsyncIterator[ImportRow]:
    statement = (
        select(ImportRow)
        .where(ImportRow.import_id == import_id)
        .order_by(ImportRow.line)
        .execution_options(yield_per=REPORT_BATCH)
    )
    result = await session.stream_scalars(statement)
    async for row in result:
        yield row
