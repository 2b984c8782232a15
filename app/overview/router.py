"""`GET /v1/stats`: the dashboard's overview."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ReaderDep, SessionDep, StateDep
from app.overview import service as overview_service
from app.overview.schemas import Stats

router = APIRouter(prefix="/v1", tags=["clients"])


@router.get("/stats", response_model=Stats)
async def get_stats(principal: ReaderDep, session: SessionDep, state: StateDep) -> Stats:
    """Counts by status, the latest audit, the provisioning outbox and today's CTCT quota."""
    return await overview_service.stats(session, state.ctct)
