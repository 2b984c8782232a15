"""The clients API: registration, dashboard reads, person decisions and transfer requests."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from app.clients import queries, repository, transfers
from app.clients import service as clients_service
from app.clients.models import EventSource
from app.clients.repository import ClientFilter
from app.clients.schemas import (
    ClientDetail,
    ClientOut,
    ClientPage,
    Decision,
    NewTransferRequest,
    RegisterClient,
    Stats,
    TransferChange,
    TransferPage,
    TransferRequestOut,
    check_account_id,
)
from app.clients.service import Actor
from app.ctct.client import CtctClient
from app.deps import DeciderDep, ReaderDep, RegistrarDep, SessionDep, StateDep
from app.errors import NotFound, UpstreamUnavailable
from app.membership import probe as membership_probe
from app.state import AppState

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1", tags=["clients"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
StatusQuery = Annotated[
    list[str],
    Query(
        description="approved, billing_approved, other_partner, unaffiliated, unverified; "
        "repeat the parameter or separate with commas"
    ),
]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]


def _wants_csv(accept: str | None) -> bool:
    return accept is not None and "text/csv" in accept.lower()


def _ctct(state: AppState) -> CtctClient:
    assert state.ctct is not None, "the lifespan builds the CTCT client"
    return state.ctct


def _csv(lines: object, filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/clients",
    response_model=ClientOut,
    status_code=201,
    responses={200: {"model": ClientOut, "description": "already known; probed again"}},
    summary="Register an account the product has seen; probes CTCT",
)
async def register_client(
    body: RegisterClient, principal: RegistrarDep, state: StateDep, response: Response
) -> ClientOut:
    """Probe the account (with the user's token, used once) and return the client."""
    result = await membership_probe.probe(
        _ctct(state),
        state.sessionmaker,
        body.encoded_account_id,
        actor=Actor(EventSource.PROBE, name=principal.name),
        user_access_token=body.access_token,
        our_partner_id=state.settings.ctct.partner_id,
    )
    if not result.created:
        response.status_code = 200
    log.info(
        f"clients.register.{'created' if result.created else 'known'}",
        client=body.encoded_account_id,
        status=result.client.status,
        answered=result.answered,
        actor=principal.name,
    )
    return ClientOut.model_validate(result.client)


@router.get(
    "/clients",
    response_model=ClientPage,
    summary="List, search and export clients",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_clients(
    *,
    principal: ReaderDep,
    session: SessionDep,
    state: StateDep,
    status: StatusQuery = [],  # noqa: B006 - FastAPI copies query defaults
    q: Annotated[str | None, Query(description="search id, login, organization, email")] = None,
    sort: Annotated[str | None, Query(description=f"one of {', '.join(queries.SORTS)}")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int | None, Query(description="1-500, default 50")] = None,
    accept: AcceptHeader = None,
) -> ClientPage | StreamingResponse:
    """A page of clients; with `Accept: text/csv`, every matching client as CSV."""
    where = ClientFilter(
        statuses=queries.parse_statuses(status),
        q=queries.parse_query(q),
        sort=queries.parse_sort(sort),
    )
    if _wants_csv(accept):
        log.info("clients.export.started", actor=principal.name, statuses=list(where.statuses))
        return _csv(queries.export_clients_csv(state.sessionmaker, where), "clients.csv")
    page = await queries.list_clients(
        session, where, cursor=cursor, limit=queries.parse_limit(limit)
    )
    return ClientPage(
        items=[ClientOut.model_validate(client) for client in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/clients/{encoded_account_id}", response_model=ClientDetail)
async def get_client(
    encoded_account_id: str, principal: ReaderDep, session: SessionDep
) -> ClientDetail:
    """The client with its status events and transfer requests."""
    return await queries.client_detail(session, check_account_id(encoded_account_id))


@router.get("/stats", response_model=Stats)
async def get_stats(principal: ReaderDep, session: SessionDep, state: StateDep) -> Stats:
    """Counts by status, the latest audit, the provisioning outbox and today's CTCT quota."""
    return await queries.stats(session, state.ctct)


@router.post("/clients/{encoded_account_id}/billing-approval", response_model=ClientOut)
async def approve_billing(
    encoded_account_id: str, body: Decision, principal: DeciderDep, session: SessionDep
) -> ClientOut:
    """Approve an other_partner or unaffiliated client for extra billing (note required)."""
    outcome = await clients_service.approve_billing(
        session,
        check_account_id(encoded_account_id),
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
        expected_version=body.version,
    )
    return ClientOut.model_validate(outcome.client)


@router.delete("/clients/{encoded_account_id}/billing-approval", response_model=ClientOut)
async def revoke_billing(
    encoded_account_id: str, body: Decision, principal: DeciderDep, session: SessionDep
) -> ClientOut:
    """Revoke a billing approval (note required); the evidence-based status returns."""
    outcome = await clients_service.revoke_billing(
        session,
        check_account_id(encoded_account_id),
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
        expected_version=body.version,
    )
    return ClientOut.model_validate(outcome.client)


@router.post("/clients/{encoded_account_id}/probe", response_model=ClientOut)
async def probe_client(
    encoded_account_id: str, principal: DeciderDep, state: StateDep
) -> ClientOut:
    """Re-check a known client against CTCT now; 503 (client unchanged) if CTCT cannot answer."""
    check_account_id(encoded_account_id)
    async with state.sessionmaker() as session:
        if await repository.by_account_id(session, encoded_account_id) is None:
            raise NotFound(f"no client with encoded_account_id {encoded_account_id!r}")
    result = await membership_probe.probe(
        _ctct(state),
        state.sessionmaker,
        encoded_account_id,
        actor=Actor(EventSource.PROBE, name=principal.name),
        our_partner_id=state.settings.ctct.partner_id,
    )
    log.info(
        f"clients.probe.{'answered' if result.answered else 'unanswered'}",
        client=encoded_account_id,
        status=result.client.status,
        actor=principal.name,
    )
    if not result.answered:
        raise UpstreamUnavailable(
            "CTCT could not answer; the client is unchanged. Try again later.",
            extra={"ctct_error": result.error},
        )
    return ClientOut.model_validate(result.client)


@router.post(
    "/clients/{encoded_account_id}/transfer-requests",
    response_model=TransferRequestOut,
    status_code=201,
)
async def file_transfer_request(
    encoded_account_id: str,
    body: NewTransferRequest,
    principal: DeciderDep,
    session: SessionDep,
) -> TransferRequestOut:
    """Ask (through CTCT's partner team) for an unaffiliated account to move under us."""
    request = await transfers.file_transfer_request(
        session,
        check_account_id(encoded_account_id),
        note=body.note,
        actor=Actor(EventSource.PERSON, name=principal.name),
    )
    return await queries.transfer_detail(session, request.id)


@router.patch("/transfer-requests/{request_id}", response_model=TransferRequestOut)
async def change_transfer_request(
    request_id: int, body: TransferChange, principal: DeciderDep, session: SessionDep
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
    response_model=TransferPage,
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_transfer_requests(
    *,
    principal: ReaderDep,
    session: SessionDep,
    state: StateDep,
    transfer_state: Annotated[
        list[str], Query(alias="state", description="repeat or separate with commas")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query(description="1-500, default 50")] = None,
    accept: AcceptHeader = None,
) -> TransferPage | StreamingResponse:
    """Transfer requests oldest first; with `Accept: text/csv`, the export for CTCT."""
    states = queries.parse_states(transfer_state)
    if _wants_csv(accept):
        return _csv(
            queries.export_transfers_csv(state.sessionmaker, states), "transfer-requests.csv"
        )
    page = await queries.list_transfers(
        session, states, cursor=cursor, limit=queries.parse_limit(limit)
    )
    return TransferPage(items=page.items, next_cursor=page.next_cursor)
