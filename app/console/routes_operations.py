"""Provisioning requests that need attention (retry) and failing webhook deliveries (redeliver):
viewers see them, admins act on them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.deps import AdminDep, FormDep, RowId, SessionDep, StateDep, ViewerDep, Visitor
from app.console.kit import Flash
from app.console.rendering import redirect, render
from app.errors import Conflict, NotFound
from app.kit.pagination import CursorCodec
from app.provisioning import service as provisioning_service
from app.provisioning.models import RequestState
from app.webhooks import service as webhooks_service
from app.webhooks.models import DeliveryState

router = APIRouter()

SHOWN = 50


async def _provisioning_page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    *,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    sections = {}
    for state in (RequestState.NEEDS_ATTENTION, RequestState.FAILED):
        page = await provisioning_service.list_requests(
            db, cursors, state=state, cursor=None, limit=SHOWN
        )
        sections[state.value] = page.items
    return render(
        request,
        "provisioning.html",
        visitor,
        {"sections": sections, "shown": SHOWN, "page_error": page_error},
        status_code=status_code,
    )


@router.get("/provisioning")
async def provisioning_page(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    return await _provisioning_page(request, visitor, db, state.cursors)


@router.post("/provisioning/{request_id}/retry")
async def retry(
    request: Request,
    request_id: RowId,
    *,
    visitor: AdminDep,
    form: FormDep,
    db: SessionDep,
    state: StateDep,
) -> Response:
    try:
        async with db.begin_nested():
            await provisioning_service.requeue(
                db, request_id, max_age=state.settings.provision.max_age, by=visitor.email
            )
    except (Conflict, NotFound) as exc:
        return await _provisioning_page(
            request, visitor, db, state.cursors, page_error=exc.detail, status_code=exc.status
        )
    return redirect(
        request,
        "/provisioning",
        flash=Flash("ok", f"Provisioning request {request_id} is queued again."),
    )


async def _webhooks_page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    *,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    failed = await webhooks_service.deliveries(
        db, cursors, limit=SHOWN, cursor=None, state=DeliveryState.FAILED, event_type=None
    )
    return render(
        request,
        "webhooks.html",
        visitor,
        {"deliveries": failed.items, "shown": SHOWN, "page_error": page_error},
        status_code=status_code,
    )


@router.get("/webhooks")
async def webhooks_page(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    return await _webhooks_page(request, visitor, db, state.cursors)


@router.post("/webhooks/{delivery_id}/redeliver")
async def redeliver(
    request: Request,
    delivery_id: RowId,
    *,
    visitor: AdminDep,
    form: FormDep,
    db: SessionDep,
    state: StateDep,
) -> Response:
    assert visitor.email is not None
    try:
        async with db.begin_nested():
            await webhooks_service.redeliver(db, delivery_id, by=visitor.email)
    except NotFound as exc:
        return await _webhooks_page(
            request, visitor, db, state.cursors, page_error=exc.detail, status_code=exc.status
        )
    return redirect(
        request, "/webhooks", flash=Flash("ok", f"Delivery {delivery_id} is queued again.")
    )
