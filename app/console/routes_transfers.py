"""Transfer requests: the list (by state, CSV for CTCT's partner team) and advancing one."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import queries as clients_queries
from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.models import EventSource, TransferState
from app.clients.schemas import TransferChange
from app.console.deps import (
    FormDep,
    OperatorDep,
    RowId,
    SessionDep,
    StateDep,
    ViewerDep,
    Visitor,
)
from app.console.forms import Errors, Values, checked, field_errors, parse, prefixed
from app.console.kit import Flash
from app.console.rendering import redirect, render
from app.errors import Conflict, NotFound, ValidationFailed
from app.kit.pagination import CursorCodec

router = APIRouter()

PAGE_SIZE = 50
OPEN = "requested,submitted"


def _states(request: Request, errors: Errors) -> tuple[str, ...]:
    raw = request.query_params.get("state", OPEN)
    return checked(lambda: clients_queries.parse_states([raw]), errors, ())


async def _page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    cursors: CursorCodec,
    *,
    errors: Errors | None = None,
    values: Values | None = None,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    errors = dict(errors or {})
    states = _states(request, errors)
    page = None
    if "state" not in errors and "cursor" not in errors:
        try:
            page = await clients_queries.list_transfers(
                db, cursors, states, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE
            )
        except ValidationFailed as exc:
            errors.update(field_errors(exc))
    listing_bad = "state" in errors or "cursor" in errors
    return render(
        request,
        "transfers.html",
        visitor,
        {
            "page": page,
            "errors": errors,
            "values": {"state": request.query_params.get("state", OPEN), **(values or {})},
            "filters": {
                OPEN: "Open (requested or submitted)",
                "": "Every state",
                **{state.value: state.value for state in TransferState},
            },
            "next_states": {
                state.value: sorted(s.value for s in clients_transfers.TRANSITIONS[state])
                for state in TransferState
            },
            "page_error": page_error,
        },
        status_code=400 if listing_bad and status_code == 200 else status_code,
    )


@router.get("/transfer-requests")
async def transfers_page(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    return await _page(request, visitor, db, state.cursors)


@router.get("/transfer-requests.csv")
async def transfers_csv(
    request: Request, visitor: ViewerDep, state: StateDep, db: SessionDep
) -> Response:
    errors: Errors = {}
    states = _states(request, errors)
    if errors:
        return await _page(request, visitor, db, state.cursors)
    return StreamingResponse(
        clients_queries.export_transfers_csv(state.sessionmaker, states),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="transfer-requests.csv"'},
    )


@router.post("/transfer-requests/{request_id}/advance")
async def advance(
    request: Request,
    request_id: RowId,
    *,
    visitor: OperatorDep,
    form: FormDep,
    db: SessionDep,
    state: StateDep,
) -> Response:
    name = f"advance-{request_id}"
    data, errors, values = parse(TransferChange, form)
    if data is None:
        shown = {key: value for key, value in errors.items() if key in ("state", "note")}
        others = [f"{key} {value}" for key, value in errors.items() if key not in shown]
        if others:
            shown["form"] = "; ".join(others)
        return await _page(
            request,
            visitor,
            db,
            state.cursors,
            errors=prefixed(shown, name),
            values=prefixed(values, name),
            page_error=f"Transfer request {request_id} was not changed: "
            + "; ".join(f"{key} {message}" for key, message in errors.items()),
            status_code=400,
        )
    note = data.note.strip() if data.note and data.note.strip() else None
    try:
        async with db.begin_nested():
            await clients_transfers.change_transfer_request(
                db,
                request_id,
                data.state,
                note=note,
                actor=clients_service.Actor(EventSource.PERSON, name=visitor.email),
                expected_version=data.version,
            )
    except (Conflict, NotFound) as exc:
        return await _page(
            request,
            visitor,
            db,
            state.cursors,
            errors=prefixed({"form": exc.detail}, name),
            values=prefixed(values, name),
            page_error=exc.detail,
            status_code=exc.status,
        )
    return redirect(
        request,
        "/transfer-requests",
        flash=Flash("ok", f"Transfer request {request_id} is {data.state.value} now."),
    )
