"""Running a stored import to its end (a flow), in the worker or in `partnergate import`.

The import gets a CTCT client of its own that counts its calls (list pages, probes, tokens) and
shares the database budget with every other caller. Progress is saved after every page and
batch, with a heartbeat: an import whose process died is claimed again after ten minutes and
continues with the rows it had not applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.ctct.client import build_ctct_client
from app.db import utcnow
from app.imports import flow, repository, service
from app.imports.applier import RowResult
from app.imports.flow import CallCounter, Progress, ProgressFn
from app.imports.models import ImportJob, ImportState, Phase
from app.settings import Settings

log = structlog.get_logger(__name__)


async def _save(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    counter: CallCounter,
    *,
    progress: Progress | None = None,
    done_before: int = 0,
    state: ImportState | None = None,
    error: str | None = None,
) -> ImportJob:
    async with sessionmaker() as session, session.begin():
        job = await repository.get(session, import_id, for_update=True)
        assert job is not None
        now = utcnow()
        job.list_calls = counter.list_calls
        job.probe_calls = counter.probe_calls
        job.token_calls = counter.token_calls
        job.heartbeat_at = now
        if progress is not None:
            job.phase = progress.phase.value
            job.pages_read = progress.pages_read
            job.rows_done = done_before + progress.rows_done
        if state is not None:
            job.state = state.value
            job.finished_at = now
            job.error = error
            job.outcomes = await service.count_outcomes(session, import_id)
            if state is ImportState.COMPLETED:
                job.phase = Phase.DONE.value
        await session.flush()
        return job


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    import_id: int,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressFn | None = None,
) -> ImportJob | None:
    """Claim the import and apply its pending rows; None if it is not claimable."""
    async with sessionmaker() as session, session.begin():
        job = await service.claim(session, import_id, now=utcnow())
        if job is None:
            log.info("imports.run.skipped", import_id=import_id)
            return None
        rows = await service.pending_rows(session, import_id)
        actor = job.requested_by or f"import-{import_id}"
        dry_run = job.dry_run
        done_before = job.rows_total - len(rows)
    counter = CallCounter(token_path=httpx.URL(settings.ctct.token_url).path)
    ctct = build_ctct_client(
        settings.ctct, engine=engine, transport=transport, on_request=counter.on_request
    )

    async def report(progress: Progress) -> None:
        await _save(sessionmaker, import_id, counter, progress=progress, done_before=done_before)
        if on_progress is not None:
            await on_progress(progress)

    async def record(session: AsyncSession, results: Sequence[RowResult]) -> None:
        await service.record(session, import_id, results)

    log.info("imports.run.started", import_id=import_id, rows=len(rows), dry_run=dry_run)
    try:
        async with ctct:
            result = await flow.run(
                sessionmaker,
                ctct,
                rows,
                actor_name=actor,
                import_id=import_id,
                dry_run=dry_run,
                report=report,
                record=record,
            )
    except BaseException as exc:
        await asyncio.shield(
            _save(
                sessionmaker,
                import_id,
                counter,
                state=ImportState.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        )
        raise
    state = ImportState.FAILED if result.error else ImportState.COMPLETED
    finished = await _save(sessionmaker, import_id, counter, state=state, error=result.error)
    log.info(
        f"imports.run.{state.value}",
        import_id=import_id,
        outcomes=finished.outcomes,
        list_calls=finished.list_calls,
        probe_calls=finished.probe_calls,
        error=finished.error,
    )
    return finished
