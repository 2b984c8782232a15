"""The imports' door: store a file's rows and queue their run, read an import and its report.

Every function takes the caller's session and never commits; the run itself opens its own
transactions (`app.imports.runner`, `app.imports.flow`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import NotFound
from app.imports import repository
from app.imports.applier import RowResult
from app.imports.csv_rows import RowIn
from app.imports.models import ImportJob, ImportRow, ImportState, Phase, Wish
from app.imports.schemas import ImportOut
from app.kit import jobs

log = structlog.get_logger(__name__)

# The worker's job for a queued import (defined in app/worker/import_jobs.py).
RUN_TASK = "imports.run"
QUEUE = "imports"
QUEUEING_LOCK_PREFIX = "imports-"
# A running import that has not beaten for this long lost its process; it may be claimed again.
HEARTBEAT_TIMEOUT = timedelta(minutes=10)
REPORT_COLUMNS = (
    "line",
    "encoded_account_id",
    "login_name",
    "wish",
    "outcome",
    "detail",
    "resolved_account_id",
    "status",
)


class ImportNotFound(NotFound):
    type_slug = "import-not-found"
    title = "No such import"


async def create(
    session: AsyncSession,
    rows: Sequence[RowIn],
    *,
    filename: str | None,
    requested_by: str | None,
    dry_run: bool,
    queue: bool = True,
) -> ImportJob:
    """Store an import and its rows; with `queue`, its run is deferred to the worker."""
    job = await repository.add_job(
        session,
        ImportJob(
            state=ImportState.QUEUED.value,
            phase=Phase.WAITING.value,
            dry_run=dry_run,
            filename=filename,
            requested_by=requested_by,
            rows_total=len(rows),
            rows_done=0,
            pages_read=0,
            list_calls=0,
            probe_calls=0,
            token_calls=0,
            outcomes={},
        ),
    )
    await repository.add_rows(
        session,
        [
            {
                "import_id": job.id,
                "line": row.line,
                "encoded_account_id": row.encoded_account_id,
                "login_name": row.login_name,
                "wish": row.wish.value if row.wish else None,
                "note": row.note,
                "problem": row.problem,
            }
            for row in rows
        ],
    )
    if queue:
        await jobs.defer_in_transaction(
            session,
            task=RUN_TASK,
            queue=QUEUE,
            queueing_lock=f"{QUEUEING_LOCK_PREFIX}{job.id}",
            import_id=job.id,
        )
    log.info(
        "imports.import.created",
        import_id=job.id,
        rows=len(rows),
        dry_run=dry_run,
        requested_by=requested_by,
    )
    return job


async def get(session: AsyncSession, import_id: int) -> ImportJob:
    """The import, or a 404 problem."""
    job = await repository.get(session, import_id)
    if job is None:
        raise ImportNotFound(f"no import {import_id}")
    return job


def out(job: ImportJob) -> ImportOut:
    """The import as the API shows it."""
    values = {name: getattr(job, name) for name in ImportOut.model_fields if name != "report_url"}
    return ImportOut(**values, report_url=f"/v1/imports/{job.id}/report")


def row_in(row: ImportRow) -> RowIn:
    """A stored row as the flow takes it."""
    return RowIn(
        line=row.line,
        encoded_account_id=row.encoded_account_id,
        login_name=row.login_name,
        wish=Wish(row.wish) if row.wish else None,
        note=row.note,
        problem=row.problem,
    )


async def claim(session: AsyncSession, import_id: int, *, now: datetime) -> ImportJob | None:
    """Move a queued (or abandoned) import to `running`; None if it is not claimable."""
    job = await repository.claim(session, import_id, stale_before=now - HEARTBEAT_TIMEOUT)
    if job is None:
        return None
    job.state = ImportState.RUNNING.value
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    await session.flush()
    return job


async def pending_rows(session: AsyncSession, import_id: int) -> list[RowIn]:
    """The rows still to apply, in file order."""
    return [row_in(row) for row in await repository.pending_rows(session, import_id)]


async def record(session: AsyncSession, import_id: int, results: Sequence[RowResult]) -> None:
    """Store a batch's outcomes."""
    await repository.record_outcomes(
        session,
        import_id,
        [(r.line, r.outcome.value, r.detail, r.account_id, r.status) for r in results],
    )


async def count_outcomes(session: AsyncSession, import_id: int) -> dict[str, int]:
    """Rows by outcome so far."""
    return await repository.count_outcomes(session, import_id)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell that starts like a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(values: Iterable[object]) -> str:
    """One CSV line (formula-looking cells defused)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell(value) for value in values])
    return buffer.getvalue()


async def report_csv(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int
) -> AsyncIterator[str]:
    """The per-row report, streamed in file order (its own transaction)."""
    yield csv_line(REPORT_COLUMNS)
    async with sessionmaker() as session, session.begin():
        async for row in repository.stream_rows(session, import_id):
            yield csv_line(getattr(row, column) for column in REPORT_COLUMNS)
