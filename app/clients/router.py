"""The clients API: dashboard reads, person decisions and transfer requests.

Registering and probing an account (`POST /v1/clients`, `POST /v1/clients/{id}/probe`) are
membership's routes (`app.membership.router`); `GET /v1/stats` is the overview's.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from app.clients import queries, transfers
from app.clients import service as clients_service
from app.clients.models import ClientStatus, EventSource, TransferState
from app.clients.repository import ClientFilter
from app.clients.schemas import (
    AccountIdPath,
    ClientDetail,
    ClientOut,
    Decision,
    NewTransferRequest,
    TransferChange,
    TransferRequestOut,
)
from app.clients.service import Actor
from app.deps import CursorsDep, DeciderDep, ReaderDep, SessionDep, StateDep
from app.errors import Responses
from app.kit.inputs import RowId, Text
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1", tags=["clients"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _list_of(values: list[str]) -> Any:
    """The schema of `a`, `a,b`, ... of known values (a repeated query parameter's items)."""
    one = f"(?:(?:{'|'.join(values)}) *)?"
    pattern = f"^ *{one}(?:, *{one})*$"
    return WithJsonSchema({"type": "string", "maxLength": 200, "pattern": pattern})


StatusQuery = Annotated[
    list[Annotated[str, _list_of([status.value for status in ClientStatus])]],
    Query(
        description="approved, billing_approved, other_partner, unaffiliated, unverified; "
        "repeat the parameter or separate with commas",
        max_length=20,
    ),
]
SearchQuery = Annotated[
    str | None,
    Query(max_length=200, description="search id, login, organization, email"),
    Text,
]
LoginNameQuery = Annotated[
    str | None,
    Query(
        max_length=queries.LOGIN_NAME_MAX,
        description="exactly this login or site-owner name (any case)",
    ),
    Text,
]
SortQuery = Annotated[
    str | None,
    Query(description="the column to sort by; `-` first for descending"),
    WithJsonSchema({"type": "string", "enum": list(queries.SORTS)}),
]
TransferStateQuery = Annotated[
    list[Annotated[str, _list_of([state.value for state in TransferState])]],
    Query(alias="state", description="repeat or separate with commas", max_length=20),
]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]
_NO_CLIENT: Responses = {404: {"description": "no client with this encoded_account_id"}}
_CSV: Responses = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def _wants_csv(accept: str | None) -> bool:
    return accept is not None and "text/csv" in accept.lower()


def _csv(lines: object, filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/clients",
    response_model=Page[ClientOut],
    summary="List, search and export clients",
    responses=_CSV,
)
async def list_clients(
    *,
    principal: ReaderDep,
    session: SessionDep,
    state: StateDep,
    cursors: CursorsDep,
    status: StatusQuery = [],  # noqa: B006 - FastAPI copies query defaults
    q: SearchQuery = None,
    login_name: LoginNameQuery = None,
    sort: SortQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    accept: AcceptHeader = None,
) -> Page[ClientOut] | StreamingResponse:
    """A page of clients; with `Accept: text/csv`, every matching client as CSV."""
    where = ClientFilter(
        statuses=queries.parse_statuses(status),
        q=queries.parse_query(q),
        sort=queries.parse_sort(sort),
        login_name=queries.parse_login_name(login_name),
    )
    if _wants_csv(accept):
        log.info("clients.export.started", actor=principal.name, statuses=list(where.statuses))
        return _csv(queries.export_clients_csv(state.sessionmaker, where), "clients.csv")
    return await queries.list_clients(session, cursors, where, cursor=cursor, limit=limit)


@router.get("/clients/{encoded_account_id}", response_model=ClientDetail, responses=_NO_CLIENT)
async def get_client(
    encoded_account_id: AccountIdPath, principal: ReaderDep, session: SessionDep
) -> ClientDetail:
    """The client with its status events and transfer requests."""
    return await queries.client_detail(session, encoded_account_id)


@router.post(
    "/clients/{encoded_account_id}/billing-approval",
    response_model=ClientOut,
    responses={**_NO_CLIENT, 409: {"description": "not possible in the client's status, or stale"}},
)
async def approve_billing(
    encoded_account_id: AccountIdPath, body: Decision, principal: DeciderDep, session: SessionDep
) -> ClientOut:
    """Approve an other_partner or unaffiliated client for extra billing (note required)."""
    outcome = await clients_service.approve_billing(
        session,
        encoded_account_id,
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
        expected_version=body.version,
    )
    return ClientOut.model_validate(outcome.client)


@router.delete(
    "/clients/{encoded_account_id}/billing-approval",
    response_model=ClientOut,
    responses={**_NO_CLIENT, 409: {"description": "not possible in the client's status, or stale"}},
)
async def revoke_billing(
    encoded_account_id: AccountIdPath, body: Decision, principal: DeciderDep, session: SessionDep
) -> ClientOut:
    """Revoke a billing approval (note required); the evidence-based status returns."""
    outcome = await clients_service.revoke_billing(
        session,
        encoded_account_id,
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
        expected_version=body.version,
    )
    return ClientOut.model_validate(outcome.client)


@router.post(
    "/clients/{encoded_account_id}/transfer-requests",
    response_model=TransferRequestOut,
    status_code=201,
    responses={**_NO_CLIENT, 409: {"description": "not unaffiliated, or one is already open"}},
)
async def file_transfer_request(
    encoded_account_id: AccountIdPath,
    body: NewTransferRequest,
    principal: DeciderDep,
    session: SessionDep,
) -> TransferRequestOut:
    """Ask (through CTCT's partner team) for an unaffiliated account to move under us."""
    request = await transfers.file_transfer_request(
        session,
        encoded_account_id,
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
    )
    return await queries.transfer_detail(session, request.id)


@router.patch(
    "/transfer-requests/{request_id}",
    response_model=TransferRequestOut,
    responses={
        404: {"description": "no such transfer request"},
        409: {"description": "not a step this request can take now, or stale"},
    },
)
async def change_transfer_request(
    request_id: RowId, body: TransferChange, principal: DeciderDep, session: SessionDep
) -> TransferRequestOut:
    """Move a transfer request along requested -> submitted -> completed|rejected, or withdraw."""
    await transfers.change_transfer_request(
        session,
        request_id,
        body.state,
        note=body.note.strip() if body.note and body.note.strip() else None,
        actor=Actor(EventSource.PERSON, name=principal.name),
        expected_version=body.version,
    )
    return await queries.transfer_detail(session, request_id)


@router.get(
    "/transfer-requests",
    response_model=Page[TransferRequestOut],
    responses=_CSV,
)
async def list_transfer_requests(
    *,
    principal: ReaderDep,
    session: SessionDep,
    state: StateDep,
    transfer_state: TransferStateQuery = [],  # noqa: B006 - FastAPI copies query defaults
    cursors: CursorsDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    accept: AcceptHeader = None,
) -> Page[TransferRequestOut] | StreamingResponse:
    """Transfer requests oldest first; with `Accept: text/csv`, the export for CTCT."""
    states = queries.parse_states(transfer_state)
    if _wants_csv(accept):
        return _csv(
            queries.export_transfers_csv(state.sessionmaker, states), "transfer-requests.csv"
        )
    return await queries.list_transfers(session, cursors, states, cursor=cursor, limit=limit)
