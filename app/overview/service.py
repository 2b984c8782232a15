"""The overview's figures, each asked of the domain that owns it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit_service
from app.clients import service as clients_service
from app.ctct.client import CtctClient
from app.overview.schemas import LastAudit, Outbox, Quota, Stats
from app.provisioning import service as provisioning_service


async def stats(session: AsyncSession, ctct: CtctClient | None) -> Stats:
    """Counts by status, the latest audit, the provisioning outbox and today's CTCT quota."""
    by_status = await clients_service.count_by_status(session)
    run = await audit_service.last_run(session)
    last_audit = (
        LastAudit(
            id=run.id,
            state=run.state,
            trigger=run.trigger,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        if run is not None
        else None
    )
    outbox = await provisioning_service.outbox_stats(session)
    quota = None
    if ctct is not None:
        snapshot = await ctct.budget.snapshot()
        quota = Quota(
            day=snapshot.day.isoformat(),
            used=snapshot.used,
            daily_quota=snapshot.daily_quota,
            remaining_interactive=snapshot.remaining_interactive,
            remaining_background=snapshot.remaining_background,
        )
    return Stats(
        clients_by_status=by_status,
        clients_total=sum(by_status.values()),
        last_audit=last_audit,
        provisioning_outbox=Outbox(depth=outbox.depth, oldest_created_at=outbox.oldest_created_at),
        ctct_quota=quota,
    )
