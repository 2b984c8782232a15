"""The imports' worker job: run a queued import to its end."""

from __future__ import annotations

from procrastinate import JobContext

from app.imports import runner
from app.imports import service as imports_service
from app.kit.jobs import job_app
from app.worker import runtime


@job_app.task(name=imports_service.RUN_TASK, queue=imports_service.QUEUE, pass_context=True)
async def run(context: JobContext, import_id: int) -> None:
    """Apply an import queued by `POST /v1/imports` (skipped if another process runs it)."""
    resources = runtime.resources_of(context)
    await runner.run_import(
        resources.sessionmaker,
        resources.engine,
        resources.settings,
        import_id,
        transport=resources.ctct_transport,
    )
