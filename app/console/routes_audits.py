"""Audits: start one, watch it, and confirm or reject the demotions it held."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit_service
from app.audit.models import ACTIVE_STATES, AuditState
from app.console.deps import FormDep, OperatorDep, RowId, SessionDep, StateDep, ViewerDep, Visitor
from app.console.kit import Flash
from app.console.rendering import redirect, render
from app.errors import Conflict
from app.kit.pagination import CursorCodec

router = APIRouter()

RECENT_RUNS = 20
HELD_SHOWN = 200


async def _list_page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    *,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    runs = (
        await audit_service.list_runs(db, cursors, state=None, cursor=None, limit=RECENT_RUNS)
    ).items
    return render(
        request,
        "audits.html",
        visitor,
        {
            "runs": runs,
            "active": next((run for run in runs if AuditState(run.state) in ACTIVE_STATES), None),
            "page_error": page_error,
        },
        status_code=status_code,
    )


@router.get("/audits")
async def audits_page(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    return await _list_page(request, visitor, db, state.cursors)


@router.post("/audits")
async def start_audit(
    request: Request, visitor: OperatorDep, form: FormDep, db: SessionDep, state: StateDep
) -> Response:
    try:
        async with db.begin_nested():
            run = await audit_service.request_run(db, requested_by=visitor.email)
    except Conflict as exc:
        return await _list_page(
            request, visitor, db, state.cursors, page_error=exc.detail, status_code=exc.status
        )
    return redirect(request, f"/audits/{run.id}", flash=Flash("ok", f"Audit {run.id} is queued."))


async def _run_page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    run_id: int,
    *,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    run = await audit_service.run_detail(db, cursors, run_id, cursor=None, limit=HELD_SHOWN)
    state = AuditState(run.state)
    return render(
        request,
        "audit.html",
        visitor,
        {
            "run": run,
            "held": run.held.items,
            "held_shown": HELD_SHOWN,
            "watching": state in ACTIVE_STATES,
            "resolvable": state is AuditState.HELD and run.held_resolution is None,
            "page_error": page_error,
        },
        status_code=status_code,
    )


@router.get("/audits/{run_id}")
async def audit_page(
    request: Request, run_id: RowId, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    return await _run_page(request, visitor, db, state.cursors, run_id)


async def _resolve(
    request: Request,
    run_id: int,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    *,
    confirm: bool,
) -> Response:
    assert visitor.email is not None
    try:
        async with db.begin_nested():
            if confirm:
                run = await audit_service.confirm_demotions(db, run_id, by=visitor.email)
            else:
                run = await audit_service.reject_demotions(db, run_id, by=visitor.email)
    except Conflict as exc:
        return await _run_page(
            request, visitor, db, cursors, run_id, page_error=exc.detail, status_code=exc.status
        )
    text = (
        f"Demotions confirmed: {run.demotions} clients demoted."
        if confirm
        else "Demotions rejected: nobody was demoted."
    )
    return redirect(request, f"/audits/{run_id}", flash=Flash("ok", text))


@router.post("/audits/{run_id}/confirm-demotions")
async def confirm_demotions(
    request: Request,
    run_id: RowId,
    *,
    visitor: OperatorDep,
    form: FormDep,
    db: SessionDep,
    state: StateDep,
) -> Response:
    return await _resolve(request, run_id, visitor, db, state.cursors, confirm=True)


@router.post("/audits/{run_id}/reject-demotions")
async def reject_demotions(
    request: Request,
    run_id: RowId,
    *,
    visitor: OperatorDep,
    form: FormDep,
    db: SessionDep,
    state: StateDep,
) -> Response:
    return await _resolve(request, run_id, visitor, db, state.cursors, confirm=False)
