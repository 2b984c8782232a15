"""The overview: clients by status, CTCT quota, the provisioning outbox, the last audit, and
status changes per day."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.clients import service as clients_service
from app.console.chart import bar_chart
from app.console.deps import SessionDep, StateDep, ViewerDep
from app.console.rendering import render
from app.overview import service as overview_service

router = APIRouter()

CHART_DAYS = 30


@router.get("/")
async def overview(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    stats = await overview_service.stats(db, state.ctct)
    per_day = await clients_service.status_changes_per_day(db, days=CHART_DAYS)
    quota = stats.ctct_quota
    return render(
        request,
        "overview.html",
        visitor,
        {
            "stats": stats,
            "quota_percent": round(100 * quota.used / quota.daily_quota, 1) if quota else None,
            "chart": bar_chart(per_day, label=f"Status changes per day, last {CHART_DAYS} days"),
            "changes_total": sum(count for _, count in per_day),
            "chart_days": CHART_DAYS,
        },
    )
