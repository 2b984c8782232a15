"""`/v1/audits`: start, watch and resolve reconciliations with CTCT's partner list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.deps import AuditorDep, ReaderDep, SessionDep
from app.membership import audit as audit_service
from app.membership import audit_repository
from app.membership.audit_models import AuditState
from app.membership.audit_schemas import AuditRunDetail, AuditRunOut, AuditRunPage, HeldDemotionOut

router = APIRouter(prefix="/v1/audits", tags=["audits"])

HELD_PAGE = 1_000


@router.post("", status_code=202, response_model=AuditRunOut, summary="Start an audit now")
async def start_audit(
    principal: AuditorDep, session: SessionDep, response: Response
) -> AuditRunOut:
    """Queue a run for the worker; 409 (with the active run's Location) if one is active."""
    run = await audit_service.request_run(session, requested_by=principal.name)
    response.headers["Location"] = f"/v1/audits/{run.id}"
    return AuditRunOut.model_validate(run)


@router.get("", response_model=AuditRunPage, summary="Audit runs, newest first")
async def list_audits(
    _: ReaderDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(description="cursor: runs older than this id")] = None,
    state: Annotated[AuditState | None, Query()] = None,
) -> AuditRunPage:
    runs = await audit_repository.page(
        session, limit=limit, before_id=before, state=state.value if state else None
    )
    items = [AuditRunOut.model_validate(run) for run in runs]
    return AuditRunPage(items=items, next_before=items[-1].id if len(items) == limit else None)


@router.get("/{run_id}", response_model=AuditRunDetail, summary="One audit run")
async def get_audit(
    run_id: int,
    _: ReaderDep,
    session: SessionDep,
    held_offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditRunDetail:
    run = await audit_service.get_run(session, run_id)
    held = await audit_repository.held_page(session, run.id, limit=HELD_PAGE, offset=held_offset)
    return AuditRunDetail(
        **AuditRunOut.model_validate(run).model_dump(exclude={"ctct_calls"}),
        held=[HeldDemotionOut.model_validate(row) for row in held],
    )


@router.post(
    "/{run_id}/confirm-demotions",
    response_model=AuditRunOut,
    summary="Apply the demotions a run held",
)
async def confirm_demotions(run_id: int, principal: AuditorDep, session: SessionDep) -> AuditRunOut:
    run = await audit_service.confirm_demotions(session, run_id, by=principal.name)
    return AuditRunOut.model_validate(run)


@router.post(
    "/{run_id}/reject-demotions",
    response_model=AuditRunOut,
    summary="Discard the demotions a run held",
)
async def reject_demotions(run_id: int, principal: AuditorDep, session: SessionDep) -> AuditRunOut:
    run = await audit_service.reject_demotions(session, run_id, by=principal.name)
    return AuditRunOut.model_validate(run)
