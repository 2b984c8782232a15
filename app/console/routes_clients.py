"""Clients: the list (filter, search, sort, pages, CSV) and one client with its decisions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.clients import queries as clients_queries
from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.evidence import NOT_OURS
from app.clients.models import OPEN_TRANSFER_STATES, ClientStatus, EventSource
from app.clients.schemas import Decision, NewTransferRequest, check_account_id
from app.console.deps import FormDep, OperatorDep, SessionDep, StateDep, ViewerDep, Visitor
from app.console.forms import Errors, Values, checked, field_errors, parse, prefixed
from app.console.kit import Flash
from app.console.rendering import redirect, render
from app.console.timeline import timeline
from app.errors import AppError, Conflict, NotFound, ValidationFailed
from app.membership import probe as membership_probe
from app.state import AppState

router = APIRouter()

PAGE_SIZE = 50
SORT_LABELS = {
    "-updated_at": "Last changed, newest first",
    "updated_at": "Last changed, oldest first",
    "-created_at": "First seen, newest first",
    "created_at": "First seen, oldest first",
    "encoded_account_id": "Account id, A-Z",
    "-encoded_account_id": "Account id, Z-A",
    "organization_name": "Organization, A-Z",
    "-organization_name": "Organization, Z-A",
}


def _filter(request: Request, errors: Errors) -> clients_queries.ClientFilter:
    params = request.query_params
    status = params.get("status", "")
    return clients_queries.ClientFilter(
        statuses=checked(lambda: clients_queries.parse_statuses([status]), errors, ()),
        q=checked(lambda: clients_queries.parse_query(params.get("q")), errors, None),
        sort=checked(
            lambda: clients_queries.parse_sort(params.get("sort")),
            errors,
            clients_queries.DEFAULT_SORT,
        ),
    )


@router.get("/clients")
async def clients_page(
    request: Request, visitor: ViewerDep, db: SessionDep, state: StateDep
) -> Response:
    errors: Errors = {}
    where = _filter(request, errors)
    page = None
    if not errors:
        try:
            page = await clients_queries.list_clients(
                db, state.cursors, where, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE
            )
        except ValidationFailed as exc:
            errors.update(field_errors(exc))
    query = {key: value for key, value in request.query_params.items() if key != "cursor"}
    return render(
        request,
        "clients.html",
        visitor,
        {
            "page": page,
            "errors": errors,
            "values": dict(request.query_params),
            "query": query,
            "statuses": [status.value for status in ClientStatus],
            "sorts": SORT_LABELS,
        },
        status_code=400 if errors else 200,
    )


@router.get("/clients.csv")
async def clients_csv(
    request: Request, visitor: ViewerDep, state: StateDep, db: SessionDep
) -> Response:
    errors: Errors = {}
    where = _filter(request, errors)
    if errors:
        return await clients_page(request, visitor, db, state)
    return StreamingResponse(
        clients_queries.export_clients_csv(state.sessionmaker, where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="clients.csv"'},
    )


def _account_id(value: str) -> str:
    try:
        return check_account_id(value)
    except ValidationFailed:
        raise NotFound(f"no client with encoded_account_id {value!r}") from None


async def _client_page(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    account_id: str,
    *,
    errors: Errors | None = None,
    values: Values | None = None,
    page_error: str | None = None,
    status_code: int = 200,
) -> Response:
    detail = await clients_queries.client_detail(db, account_id)
    client = await clients_service.get(db, account_id)
    status = ClientStatus(detail.status)
    has_open_request = any(t.state in OPEN_TRANSFER_STATES for t in detail.transfer_requests)
    applicable = {
        "approve": status in NOT_OURS,
        "revoke": status is ClientStatus.BILLING_APPROVED,
        "transfer": clients_transfers.may_transfer(client) and not has_open_request,
    }
    # A form sent back with errors is shown even if it no longer applies, with its errors.
    shown = {
        name
        for name, applies in applicable.items()
        if applies or any(key.startswith(f"{name}.") for key in errors or {})
    }
    return render(
        request,
        "client.html",
        visitor,
        {
            "client": detail,
            "timeline": timeline(detail),
            "shown": shown,
            "errors": errors or {},
            "values": values or {},
            "page_error": page_error,
        },
        status_code=status_code,
    )


@router.get("/clients/{account_id}")
async def client_page(
    request: Request, account_id: str, visitor: ViewerDep, db: SessionDep
) -> Response:
    return await _client_page(request, visitor, db, _account_id(account_id))


def _form_errors(errors: Errors, fields: tuple[str, ...]) -> Errors:
    """Errors of fields the page shows stay by them; any other joins the form's own error."""
    kept = {field: message for field, message in errors.items() if field in fields}
    others = [f"{field} {message}" for field, message in errors.items() if field not in fields]
    if others:
        kept["form"] = "; ".join(others)
    return kept


async def _decide(
    request: Request,
    visitor: Visitor,
    db: AsyncSession,
    account_id: str,
    *,
    form_name: str,
    model: type[BaseModel],
    form: FormData,
    act: Callable[[Any], Awaitable[None]],
    done: str,
) -> Response:
    """Validate a decision form, apply it in a savepoint, or show the form again with why not."""
    data, errors, values = parse(model, form)
    if data is None:
        return await _client_page(
            request,
            visitor,
            db,
            account_id,
            errors=prefixed(_form_errors(errors, ("note",)), form_name),
            values=prefixed(values, form_name),
            page_error="Nothing was changed: correct the marked field and send the form again.",
            status_code=400,
        )
    try:
        async with db.begin_nested():
            await act(data)
    except (Conflict, ValidationFailed) as exc:
        return await _client_page(
            request,
            visitor,
            db,
            account_id,
            errors=prefixed({"form": exc.detail}, form_name),
            values=prefixed(values, form_name),
            page_error=exc.detail,
            status_code=exc.status,
        )
    return redirect(request, f"/clients/{account_id}", flash=Flash("ok", done))


def _actor(visitor: Visitor) -> clients_service.Actor:
    return clients_service.Actor(EventSource.PERSON, name=visitor.email)


@router.post("/clients/{account_id}/approve-billing")
async def approve_billing(
    request: Request, account_id: str, visitor: OperatorDep, form: FormDep, db: SessionDep
) -> Response:
    account_id = _account_id(account_id)

    async def act(data: Decision) -> None:
        await clients_service.approve_billing(
            db, account_id, note=data.note, actor=_actor(visitor), expected_version=data.version
        )

    return await _decide(
        request,
        visitor,
        db,
        account_id,
        form_name="approve",
        model=Decision,
        form=form,
        act=act,
        done="Approved for billing.",
    )


@router.post("/clients/{account_id}/revoke-billing")
async def revoke_billing(
    request: Request, account_id: str, visitor: OperatorDep, form: FormDep, db: SessionDep
) -> Response:
    account_id = _account_id(account_id)

    async def act(data: Decision) -> None:
        await clients_service.revoke_billing(
            db, account_id, note=data.note, actor=_actor(visitor), expected_version=data.version
        )

    return await _decide(
        request,
        visitor,
        db,
        account_id,
        form_name="revoke",
        model=Decision,
        form=form,
        act=act,
        done="Billing approval revoked.",
    )


@router.post("/clients/{account_id}/transfer-requests")
async def file_transfer_request(
    request: Request, account_id: str, visitor: OperatorDep, form: FormDep, db: SessionDep
) -> Response:
    account_id = _account_id(account_id)

    async def act(data: NewTransferRequest) -> None:
        await clients_transfers.file_transfer_request(
            db, account_id, note=data.note, actor=_actor(visitor)
        )

    return await _decide(
        request,
        visitor,
        db,
        account_id,
        form_name="transfer",
        model=NewTransferRequest,
        form=form,
        act=act,
        done="Transfer request filed.",
    )


async def _exists(state: AppState, account_id: str) -> None:
    async with state.sessionmaker() as db, db.begin():
        await clients_service.get(db, account_id)


@router.post("/clients/{account_id}/recheck")
async def recheck(
    request: Request, account_id: str, visitor: OperatorDep, form: FormDep, state: StateDep
) -> Response:
    """Ask CTCT again; no transaction is open while it answers."""
    account_id = _account_id(account_id)
    await _exists(state, account_id)
    assert state.ctct is not None, "the lifespan builds the CTCT client"
    try:
        result = await membership_probe.probe(
            state.ctct,
            state.sessionmaker,
            account_id,
            actor=clients_service.Actor(EventSource.PROBE, name=visitor.email),
            our_partner_id=state.settings.ctct.partner_id,
        )
    except AppError as exc:
        flash = Flash("error", f"The re-check failed: {exc.detail}")
    else:
        flash = (
            Flash("ok", f"CTCT answered: the client is {result.client.status}.")
            if result.answered
            else Flash("error", "CTCT could not answer; the client is unchanged. Try again later.")
        )
    return redirect(request, f"/clients/{account_id}", flash=flash)
