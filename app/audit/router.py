"""`/v1/audits`: start, watch and resolve reconciliations with CTCT's partner list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.audit import service as audit_service
from app.audit.models import AuditState
from app.audit.schemas import AuditRunDetail, AuditRunOut
from app.deps import AuditorDep, CursorsDep, ReaderDep, SessionDep
from app.errors import Responses
from app.kit.inputs import RowId
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page

_NO_RUN: Responses = {404: {"description": "no such audit run"}}

router = APIRouter(prefix="/v1/audits", tags=["audits"])


@router.post(
    "",
    status_code=202,
    response_model=AuditRunOut,
    summary="Start an audit now",
    responses={409: {"description": "a run is already active (its Location is given)"}},
)
async def start_audit(
    principal: AuditorDep, session: SessionDep, response: Response
) -> AuditRunOut:
    """Queue a run for the worker; 409 (with the active run's Location) if one is active."""
    run = await audit_service.request_run(session, requested_by=principal.name)
    response.headers["Location"] = f"/v1/audits/{run.id}"
    return AuditRunOut.model_validate(run)


@router.get("", response_model=Page[AuditRunOut], summary="Audit runs, newest first")
async def list_audits(
    _: ReaderDep,
    session: SessionDep,
    cursors: CursorsDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    state: Annotated[AuditState | None, Query()] = None,
) -> Page[AuditRunOut]:
    return await audit_service.list_runs(session, cursors, state=state, cursor=cursor, limit=limit)


@router.get("/{run_id}", response_model=AuditRunDetail, summary="One audit run", responses=_NO_RUN)
async def get_audit(
    run_id: RowId,
    _: ReaderDep,
    session: SessionDep,
    cursors: CursorsDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> AuditRunDetail:
    """The run, with a page of the demotions it held (`limit`, `cursor` page them)."""
    return await audit_service.run_detail(session, cursors, run_id, cursor=cursor, limit=limit)


@router.post(
    "/{run_id}/confirm-demotions",
    response_model=AuditRunOut,
    responses={**_NO_RUN, 409: {"description": "the run holds no unresolved demotions"}},
    summary="Apply the demotions a run held",
)
async def confirm_demotions(
    run_id: RowId, principal: AuditorDep, session: SessionDep
) -> AuditRunOut:
    run = await audit_service.confirm_demotions(session, run_id, by=principal.name)
    return AuditRunOut.model_validate(run)


@router.post(
    "/{run_id}/reject-demotions",
    response_model=AuditRunOut,
    responses={**_NO_RUN, 409: {"description": "the run holds no unresolved demotions"}},
    summary="Discard the demotions a run held",
)
async def reject_demotions(
    run_id: RowId, principal: AuditorDep, session: SessionDep
) -> AuditRunOut:
    run = await audit_service.reject_demotions(session, run_id, by=principal.name)
    return AuditRunOut.model_validate(run)
