"""Dashboard reads: the client list (filter, search, sort, keyset cursor), CSV exports.

Lists follow the one convention (`app.kit.pagination`): a page of `limit` items and a signed
cursor bound to the listing's filter and sort, so a cursor from another listing or an edited one
is a 400 problem, never a wrong page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import repository
from app.clients.models import Client, ClientStatus, StatusEvent, TransferRequest, TransferState
from app.clients.repository import SORT_COLUMNS

# Re-exported: other packages build the listing filter from here, never from the repository.
from app.clients.repository import ClientFilter as ClientFilter  # noqa: PLC0414
from app.clients.schemas import (
    ClientDetail,
    ClientOut,
    StatusEventOut,
    TransferEventOut,
    TransferRequestOut,
)
from app.errors import FieldError, NotFound, ValidationFailed
from app.kit.pagination import CursorCodec, Page

DEFAULT_SORT = "-updated_at"
# Longer than CTCT's 50-character login names: site-owner names are free text.
LOGIN_NAME_MAX = 200
SORTS = tuple(sorted(f"{sign}{name}" for name in SORT_COLUMNS for sign in ("", "-")))
_TIMESTAMP_SORTS = frozenset({"updated_at", "created_at"})

CLIENT_CSV_COLUMNS = (
    "encoded_account_id",
    "status",
    "status_reason",
    "evidence_status",
    "verified_at",
    "verified_via",
    "login_name",
    "site_owner_name",
    "organization_name",
    "contact_email",
    "billing_status",
    "subscriber_count",
    "last_login_date",
    "plan_type",
    "encoded_partner_id",
    "created_at",
    "updated_at",
)
TRANSFER_CSV_COLUMNS = (
    "transfer_request_id",
    "state",
    "encoded_account_id",
    "login_name",
    "site_owner_name",
    "organization_name",
    "contact_email",
    "encoded_partner_id",
    "note",
    "requested_by",
    "created_at",
    "updated_at",
)


# Parsing the query -----------------------------------------------------------------------------


def parse_statuses(values: Iterable[str]) -> tuple[str, ...]:
    """`status=a&status=b` or `status=a,b`; an unknown status is a 400 problem."""
    known = {status.value for status in ClientStatus}
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if name not in known:
                raise ValidationFailed(
                    [
                        FieldError(
                            "status", f"unknown status {name!r}; use {', '.join(sorted(known))}"
                        )
                    ]
                )
            if name not in wanted:
                wanted.append(name)
    return tuple(wanted)


def parse_states(values: Iterable[str]) -> tuple[str, ...]:
    """Transfer states from `state=a&state=b` or `state=a,b`; unknown ones are a 400 problem."""
    known = {state.value for state in TransferState}
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if name and name not in known:
                raise ValidationFailed(
                    [FieldError("state", f"unknown state {name!r}; use {', '.join(sorted(known))}")]
                )
            if name and name not in wanted:
                wanted.append(name)
    return tuple(wanted)


def parse_sort(value: str | None) -> str:
    if value is None or value == "":
        return DEFAULT_SORT
    if value not in SORTS:
        raise ValidationFailed([FieldError("sort", f"must be one of {', '.join(SORTS)}")])
    return value


def parse_login_name(value: str | None) -> str | None:
    """An exact login or site-owner name to filter by; blank means no filter."""
    if value is None or not value.strip():
        return None
    if len(value.strip()) > LOGIN_NAME_MAX:
        raise ValidationFailed(
            [FieldError("login_name", f"must be at most {LOGIN_NAME_MAX} characters")]
        )
    return value.strip()


def parse_query(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > 200:
        raise ValidationFailed([FieldError("q", "must be at most 200 characters")])
    return value.strip()


# Cursors ---------------------------------------------------------------------------------------


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldError("cursor", "is not a cursor this listing issued (use next_cursor as given)")]
    )


def _client_scope(where: ClientFilter) -> list[object]:
    scope: list[object] = ["clients", where.sort, sorted(where.statuses), where.q]
    if where.login_name is not None:
        scope.append(where.login_name.lower())
    return scope


def _client_after(
    cursors: CursorCodec, where: ClientFilter, cursor: str | None
) -> tuple[str | datetime, int] | None:
    position = cursors.decode(_client_scope(where), cursor)
    if position is None:
        return None
    if len(position) != 2 or not isinstance(position[0], str) or type(position[1]) is not int:
        raise _bad_cursor()
    value, row_id = position
    if where.field in _TIMESTAMP_SORTS:
        try:
            return datetime.fromisoformat(value), row_id
        except ValueError:
            raise _bad_cursor() from None
    return value, row_id


def _client_position(where: ClientFilter, client: Client) -> tuple[str, int]:
    value = repository.sort_value(client, where.field)
    return (value.isoformat() if isinstance(value, datetime) else value), client.id


# Listing and export -----------------------------------------------------------------------------


async def list_clients(
    session: AsyncSession,
    cursors: CursorCodec,
    where: ClientFilter,
    *,
    cursor: str | None,
    limit: int,
) -> Page[ClientOut]:
    """One page of clients in `where.sort` order, after the cursor's row."""
    after = _client_after(cursors, where, cursor)
    rows = await repository.page_clients(session, where, after=after, limit=limit + 1)
    return cursors.page(
        rows,
        limit=limit,
        scope=_client_scope(where),
        position_of=lambda client: _client_position(where, client),
        item=ClientOut.model_validate,
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # A spreadsheet would run a cell that starts like a formula.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _csv_line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell(value) for value in values])
    return buffer.getvalue()


async def export_clients_csv(
    sessionmaker: async_sessionmaker[AsyncSession], where: ClientFilter
) -> AsyncIterator[str]:
    """CSV of every matching client, streamed from a server-side cursor (its own transaction)."""
    yield _csv_line(CLIENT_CSV_COLUMNS)
    async with sessionmaker() as session, session.begin():
        async for client in repository.stream_clients(session, where):
            yield _csv_line(getattr(client, column) for column in CLIENT_CSV_COLUMNS)


# One client -------------------------------------------------------------------------------------


def transfer_out(
    request: TransferRequest, encoded_account_id: str, history: Sequence[object] = ()
) -> TransferRequestOut:
    return TransferRequestOut(
        id=request.id,
        encoded_account_id=encoded_account_id,
        state=TransferState(request.state),
        note=request.note,
        requested_by=request.requested_by,
        created_at=request.created_at,
        updated_at=request.updated_at,
        closed_at=request.closed_at,
        version=request.version,
        history=[TransferEventOut.model_validate(event) for event in history],
    )


async def client_detail(session: AsyncSession, encoded_account_id: str) -> ClientDetail:
    """The client with its status events and transfer requests (each with its history)."""
    client = await repository.by_account_id(session, encoded_account_id)
    if client is None:
        raise NotFound(f"no client with encoded_account_id {encoded_account_id!r}")
    events: Sequence[StatusEvent] = await repository.events_of(session, client.id)
    transfers = await repository.transfers_of(session, client.id)
    history = await repository.transfer_events_of(session, [t.id for t in transfers])
    by_request: dict[int, list[object]] = {}
    for event in history:
        by_request.setdefault(event.transfer_request_id, []).append(event)
    return ClientDetail(
        **ClientOut.model_validate(client).model_dump(),
        events=[StatusEventOut.model_validate(event) for event in events],
        transfer_requests=[
            transfer_out(t, client.encoded_account_id, by_request.get(t.id, ())) for t in transfers
        ],
    )


# Transfer request listing ---------------------------------------------------------------------


async def list_transfers(
    session: AsyncSession,
    cursors: CursorCodec,
    states: tuple[str, ...],
    *,
    cursor: str | None,
    limit: int,
) -> Page[TransferRequestOut]:
    """Transfer requests oldest first, filtered by state."""
    scope = ["transfer-requests", sorted(states)]
    after = cursors.decode(scope, cursor)
    if after is not None and (len(after) != 1 or type(after[0]) is not int):
        raise _bad_cursor()
    rows = await repository.page_transfers(
        session, states, after_id=after[0] if after else None, limit=limit + 1
    )
    return cursors.page(
        rows,
        limit=limit,
        scope=scope,
        position_of=lambda row: (row[0].id,),
        item=lambda row: transfer_out(row[0], row[1].encoded_account_id),
    )


async def export_transfers_csv(
    sessionmaker: async_sessionmaker[AsyncSession], states: tuple[str, ...]
) -> AsyncIterator[str]:
    """CSV of the matching transfer requests for CTCT's partner team, streamed."""
    yield _csv_line(TRANSFER_CSV_COLUMNS)
    async with sessionmaker() as session, session.begin():
        async for request, client in repository.stream_transfers(session, states):
            yield _csv_line(
                (
                    request.id,
                    request.state,
                    client.encoded_account_id,
                    client.login_name,
                    client.site_owner_name,
                    client.organization_name,
                    client.contact_email,
                    client.encoded_partner_id,
                    request.note,
                    request.requested_by,
                    request.created_at,
                    request.updated_at,
                )
            )


async def transfer_detail(session: AsyncSession, request_id: int) -> TransferRequestOut:
    """One transfer request with its history."""
    found = await repository.transfer_by_id(session, request_id)
    if found is None:
        raise NotFound(f"no transfer request {request_id}")
    request, encoded_account_id = found
    history = await repository.transfer_events_of(session, [request.id])
    return transfer_out(request, encoded_account_id, history)
