"""Dashboard reads: the client list (filter, search, sort, keyset cursor), CSV export, stats.

A cursor is opaque to callers: base64url of a small JSON document (the sort, a digest of the
filter, the last row's sort value and id) followed by a checksum. One that does not decode, was
edited, or was made for another filter or sort is a 400 problem, never a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import repository
from app.clients.models import Client, ClientStatus, StatusEvent, TransferRequest, TransferState
from app.clients.repository import SORT_COLUMNS, ClientFilter
from app.clients.schemas import (
    ClientDetail,
    ClientOut,
    LastAudit,
    Outbox,
    Quota,
    Stats,
    StatusEventOut,
    TransferEventOut,
    TransferRequestOut,
)
from app.ctct.client import CtctClient
from app.errors import FieldError, NotFound, ValidationFailed
from app.membership import audit_repository
from app.provisioning import repository as provisioning_repository

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
DEFAULT_SORT = "-updated_at"
SORTS = tuple(sorted(f"{sign}{name}" for name in SORT_COLUMNS for sign in ("", "-")))
_TIMESTAMP_SORTS = frozenset({"updated_at", "created_at"})
_CHECKSUM_BYTES = 8

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


def parse_limit(value: int | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed([FieldError("limit", f"must be from 1 to {MAX_LIMIT}")])
    return value


def parse_query(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > 200:
        raise ValidationFailed([FieldError("q", "must be at most 200 characters")])
    return value.strip()


# Cursors ---------------------------------------------------------------------------------------


def _scope_digest(scope: object) -> str:
    raw = json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_cursor(scope: object, value: object, row_id: int) -> str:
    """An opaque cursor after the row (`value`, `row_id`), valid only for `scope`."""
    body = json.dumps(
        {"s": _scope_digest(scope), "v": value, "i": row_id}, separators=(",", ":")
    ).encode()
    checksum = hashlib.sha256(body).digest()[:_CHECKSUM_BYTES]
    return base64.urlsafe_b64encode(body + checksum).decode().rstrip("=")


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldError("cursor", "is not a cursor this listing issued (use next_cursor as given)")]
    )


def decode_cursor(cursor: str, scope: object) -> tuple[Any, int]:
    """The (value, id) a cursor stands for; a 400 problem if it is malformed or foreign."""
    if len(cursor) > 1024:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    body, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if len(raw) <= _CHECKSUM_BYTES or hashlib.sha256(body).digest()[:_CHECKSUM_BYTES] != checksum:
        raise _bad_cursor()
    try:
        data = json.loads(body)
    except ValueError:
        raise _bad_cursor() from None
    if (
        not isinstance(data, dict)
        or data.get("s") != _scope_digest(scope)
        or not isinstance(data.get("i"), int)
        or isinstance(data.get("i"), bool)
    ):
        raise _bad_cursor()
    return data.get("v"), data["i"]


def _client_scope(where: ClientFilter) -> list[object]:
    return ["clients", where.sort, sorted(where.statuses), where.q]


def _client_after(where: ClientFilter, cursor: str | None) -> tuple[str | datetime, int] | None:
    if cursor is None:
        return None
    value, row_id = decode_cursor(cursor, _client_scope(where))
    if not isinstance(value, str):
        raise _bad_cursor()
    if where.field in _TIMESTAMP_SORTS:
        try:
            return datetime.fromisoformat(value), row_id
        except ValueError:
            raise _bad_cursor() from None
    return value, row_id


def _cursor_value(value: str | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


# Listing and export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientPageResult:
    items: Sequence[Client]
    next_cursor: str | None


async def list_clients(
    session: AsyncSession, where: ClientFilter, *, cursor: str | None, limit: int
) -> ClientPageResult:
    """One page of clients and the cursor of the next (None at the end)."""
    after = _client_after(where, cursor)
    rows = await repository.page_clients(session, where, after=after, limit=limit + 1)
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        value = _cursor_value(repository.sort_value(last, where.field))
        next_cursor = encode_cursor(_client_scope(where), value, last.id)
    return ClientPageResult(items, next_cursor)


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


@dataclass(frozen=True)
class TransferPageResult:
    items: list[TransferRequestOut]
    next_cursor: str | None


async def list_transfers(
    session: AsyncSession, states: tuple[str, ...], *, cursor: str | None, limit: int
) -> TransferPageResult:
    """Transfer requests oldest first, filtered by state."""
    scope = ["transfers", sorted(states)]
    after_id = decode_cursor(cursor, scope)[1] if cursor is not None else None
    rows = await repository.page_transfers(session, states, after_id=after_id, limit=limit + 1)
    items = [transfer_out(request, client.encoded_account_id) for request, client in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(scope, None, items[-1].id)
    return TransferPageResult(items, next_cursor)


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


# Stats ------------------------------------------------------------------------------------------


async def stats(session: AsyncSession, ctct: CtctClient | None) -> Stats:
    """Counts by status, the latest audit, the provisioning outbox and today's CTCT quota."""
    counts = await repository.count_by_status(session)
    by_status = {status.value: counts.get(status.value, 0) for status in ClientStatus}
    runs = await audit_repository.page(session, limit=1, before_id=None, state=None)
    last_audit = (
        LastAudit(
            id=runs[0].id,
            state=runs[0].state,
            trigger=runs[0].trigger,
            created_at=runs[0].created_at,
            started_at=runs[0].started_at,
            finished_at=runs[0].finished_at,
        )
        if runs
        else None
    )
    outbox = await provisioning_repository.outbox_stats(session)
    quota = None
    if ctct is not None:
        snapshot = await ctct.budget.snapshot()
        quota = Quota(
            day=snapshot.day.isoformat(),
            used=snapshot.used,
            daily_quota=snapshot.daily_quota,
            remaining_interactive=snapshot.remaining_interactive,
            remaining_background=snapshot.remaining_background,
        )
    return Stats(
        clients_by_status=by_status,
        clients_total=sum(by_status.values()),
        last_audit=last_audit,
        provisioning_outbox=Outbox(depth=outbox.depth, oldest_created_at=outbox.oldest_created_at),
        ctct_quota=quota,
    )


async def transfer_detail(session: AsyncSession, request_id: int) -> TransferRequestOut:
    """One transfer request with its history."""
    found = await repository.transfer_by_id(session, request_id)
    if found is None:
        raise NotFound(f"no transfer request {request_id}")
    request, encoded_account_id = found
    history = await repository.transfer_events_of(session, [request.id])
    return transfer_out(request, encoded_account_id, history)
