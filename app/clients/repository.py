"""SQL for clients and status events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, func, insert, literal, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.evidence import MirroredAttributes
from app.clients.models import (
    OPEN_TRANSFER_STATES,
    STATUS_CHANNEL,
    Client,
    ClientStatus,
    StatusEvent,
    TransferRequest,
    TransferRequestEvent,
    VerifiedVia,
)


async def by_account_id(
    session: AsyncSession, encoded_account_id: str, *, for_update: bool = False
) -> Client | None:
    statement = select(Client).where(Client.encoded_account_id == encoded_account_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def add(session: AsyncSession, client: Client) -> Client:
    session.add(client)
    await session.flush()
    return client


async def add_absent(session: AsyncSession, rows: Sequence[Mapping[str, object]]) -> dict[str, int]:
    """Insert the clients (column values each) not in the store yet, in one statement: the id
    of each inserted by account id (one a concurrent writer inserted first is left out)."""
    if not rows:
        return {}
    inserted = await session.execute(
        pg_insert(Client)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=[Client.encoded_account_id])
        .returning(Client.encoded_account_id, Client.id)
    )
    return {account_id: client_id for account_id, client_id in inserted.all()}


async def add_events(session: AsyncSession, rows: Sequence[Mapping[str, object]]) -> dict[int, int]:
    """Insert status events (column values each, one per client) in one statement: each
    event's id by client id."""
    if not rows:
        return {}
    inserted = await session.execute(
        insert(StatusEvent).values(list(rows)).returning(StatusEvent.client_id, StatusEvent.id)
    )
    return {client_id: event_id for client_id, event_id in inserted.all()}


async def add_event(session: AsyncSession, event: StatusEvent) -> StatusEvent:
    session.add(event)
    await session.flush()
    return event


async def events_of(session: AsyncSession, client_id: int) -> Sequence[StatusEvent]:
    statement = (
        select(StatusEvent).where(StatusEvent.client_id == client_id).order_by(StatusEvent.id)
    )
    return (await session.execute(statement)).scalars().all()


async def notify_status_changed(session: AsyncSession, encoded_account_id: str) -> None:
    """Tell every replica (on commit) that this client's answer changed."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": STATUS_CHANNEL, "payload": encoded_account_id},
    )


async def notify_each_status_changed(session: AsyncSession, account_ids: Sequence[str]) -> None:
    """`notify_status_changed` for many clients in one statement."""
    await session.execute(
        text("SELECT pg_notify(:channel, id) FROM unnest(CAST(:ids AS text[])) AS id"),
        {"channel": STATUS_CHANNEL, "ids": list(account_ids)},
    )


def named(name: str) -> ColumnElement[bool]:
    """Login or site-owner name equal to `name`, ignoring case (both sides lowered by Postgres)."""
    lowered = func.lower(literal(name))
    return or_(
        func.lower(Client.login_name) == lowered, func.lower(Client.site_owner_name) == lowered
    )


# Partner-list evidence in bulk (the audit) ------------------------------------------------------


@dataclass(frozen=True)
class KnownClient:
    """What the audit needs to know about a listed account we already have."""

    encoded_account_id: str
    status: str
    has_open_transfer: bool


async def known(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, KnownClient]:
    """The clients we already have among `account_ids` (and whether a transfer is open)."""
    open_transfer = (
        select(TransferRequest.id)
        .where(
            TransferRequest.client_id == Client.id,
            TransferRequest.state.in_([state.value for state in OPEN_TRANSFER_STATES]),
        )
        .exists()
    )
    statement = select(Client.encoded_account_id, Client.status, open_transfer).where(
        Client.encoded_account_id.in_(list(account_ids))
    )
    rows = (await session.execute(statement)).all()
    return {row[0]: KnownClient(row[0], row[1], bool(row[2])) for row in rows}


async def confirm_approved(
    session: AsyncSession,
    listed: Mapping[str, MirroredAttributes],
    *,
    via: VerifiedVia,
    now: datetime,
) -> int:
    """Approved clients confirmed ours: refresh verification and mirrored attributes at once.

    Only rows still `approved` are touched; the version is bumped for optimistic concurrency.
    """
    if not listed:
        return 0
    statement = text(
        """
        UPDATE client AS c SET
            verified_at = :now,
            verified_via = :via,
            evidence_status = :approved,
            site_owner_name = COALESCE(v.site_owner_name, c.site_owner_name),
            organization_name = COALESCE(v.organization_name, c.organization_name),
            billing_status = COALESCE(v.billing_status, c.billing_status),
            subscriber_count = COALESCE(v.subscriber_count, c.subscriber_count),
            last_login_date = COALESCE(v.last_login_date, c.last_login_date),
            updated_at = :now,
            version = c.version + 1
        FROM unnest(
            CAST(:ids AS varchar[]), CAST(:owners AS text[]),
            CAST(:orgs AS text[]), CAST(:billing AS varchar[]),
            CAST(:subscribers AS bigint[]), CAST(:logins AS timestamptz[])
        ) AS v(
            encoded_account_id, site_owner_name, organization_name, billing_status,
            subscriber_count, last_login_date
        )
        WHERE c.encoded_account_id = v.encoded_account_id AND c.status = :approved
        """
    )
    result = await session.execute(
        statement,
        {
            "now": now,
            "via": via.value,
            "approved": ClientStatus.APPROVED.value,
            "ids": list(listed),
            "owners": [attributes.site_owner_name for attributes in listed.values()],
            "orgs": [attributes.organization_name for attributes in listed.values()],
            "billing": [attributes.billing_status for attributes in listed.values()],
            "subscribers": [attributes.subscriber_count for attributes in listed.values()],
            "logins": [attributes.last_login_date for attributes in listed.values()],
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Client listing -------------------------------------------------------------------------------

SORT_COLUMNS: dict[str, ColumnElement[str] | ColumnElement[datetime]] = {
    "updated_at": Client.updated_at,  # type: ignore[dict-item]
    "created_at": Client.created_at,  # type: ignore[dict-item]
    "encoded_account_id": Client.encoded_account_id,  # type: ignore[dict-item]
    "organization_name": func.coalesce(Client.organization_name, ""),
}
"""What `GET /v1/clients` may sort by; NULL names sort as empty strings so keysets stay total."""

EXPORT_BATCH = 500


@dataclass(frozen=True)
class ClientFilter:
    """Which clients a listing or an export covers, and in what order."""

    statuses: tuple[str, ...] = ()
    q: str | None = None
    sort: str = "-updated_at"
    # Exactly this login or site-owner name, ignoring case.
    login_name: str | None = None

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def field(self) -> str:
        return self.sort.lstrip("-")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(where: ClientFilter) -> Select[Client]:
    statement = select(Client)
    if where.statuses:
        statement = statement.where(Client.status.in_(where.statuses))
    if where.q:
        pattern = _like(where.q)
        statement = statement.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        Client.encoded_account_id,
                        Client.login_name,
                        Client.organization_name,
                        Client.contact_email,
                    )
                )
            )
        )
    if where.login_name:
        statement = statement.where(named(where.login_name))
    key = SORT_COLUMNS[where.field]
    if where.descending:
        return statement.order_by(key.desc(), Client.id.desc())
    return statement.order_by(key.asc(), Client.id.asc())


def sort_value(client: Client, field: str) -> str | datetime:
    """The value of the sort key for `client` (what a cursor remembers)."""
    value: str | datetime | None = getattr(client, field)
    return "" if value is None else value


async def page_clients(
    session: AsyncSession,
    where: ClientFilter,
    *,
    after: tuple[str | datetime, int] | None,
    limit: int,
) -> Sequence[Client]:
    """One page in `where.sort` order, strictly after the keyset `after` (value, id)."""
    statement = _filtered(where).limit(limit)
    if after is not None:
        key = tuple_(SORT_COLUMNS[where.field], Client.id)
        bound = tuple_(*after)
        statement = statement.where(key < bound if where.descending else key > bound)
    return (await session.execute(statement)).scalars().all()


async def stream_clients(session: AsyncSession, where: ClientFilter) -> AsyncIterator[Client]:
    """Every matching client over a server-side cursor, a batch at a time."""
    statement = _filtered(where).execution_options(yield_per=EXPORT_BATCH)
    result = await session.stream_scalars(statement)
    async for client in result:
        yield client


async def count_with_status(session: AsyncSession, status: ClientStatus) -> int:
    statement = select(func.count()).where(Client.status == status.value)
    return int((await session.execute(statement)).scalar_one())


async def count_events_by_day(session: AsyncSession, since: datetime) -> dict[date, int]:
    """Status events per UTC day from `since` on (days without any are absent)."""
    day = func.date(func.timezone("UTC", StatusEvent.created_at)).label("day")
    statement = select(day, func.count()).where(StatusEvent.created_at >= since).group_by(day)
    return {row[0]: int(row[1]) for row in (await session.execute(statement)).all()}


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many clients hold each status (statuses nobody holds are absent)."""
    statement = select(Client.status, func.count()).group_by(Client.status)
    return {status: int(count) for status, count in (await session.execute(statement)).all()}


# Transfer requests ----------------------------------------------------------------------------


async def add_transfer(session: AsyncSession, request: TransferRequest) -> TransferRequest:
    session.add(request)
    await session.flush()
    return request


async def add_transfer_event(
    session: AsyncSession, event: TransferRequestEvent
) -> TransferRequestEvent:
    session.add(event)
    await session.flush()
    return event


async def transfer_by_id(
    session: AsyncSession, request_id: int, *, for_update: bool = False
) -> tuple[TransferRequest, str] | None:
    """The request and its client's encoded_account_id."""
    statement = (
        select(TransferRequest, Client.encoded_account_id)
        .join(Client, Client.id == TransferRequest.client_id)
        .where(TransferRequest.id == request_id)
    )
    if for_update:
        statement = statement.with_for_update(of=TransferRequest)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def open_transfers(
    session: AsyncSession, client_id: int, *, for_update: bool = False
) -> Sequence[TransferRequest]:
    statement = (
        select(TransferRequest)
        .where(
            TransferRequest.client_id == client_id,
            TransferRequest.state.in_([state.value for state in OPEN_TRANSFER_STATES]),
        )
        .order_by(TransferRequest.id)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalars().all()


async def transfers_of(session: AsyncSession, client_id: int) -> Sequence[TransferRequest]:
    statement = (
        select(TransferRequest)
        .where(TransferRequest.client_id == client_id)
        .order_by(TransferRequest.id)
    )
    return (await session.execute(statement)).scalars().all()


async def transfer_events_of(
    session: AsyncSession, request_ids: Sequence[int]
) -> Sequence[TransferRequestEvent]:
    if not request_ids:
        return []
    statement = (
        select(TransferRequestEvent)
        .where(TransferRequestEvent.transfer_request_id.in_(request_ids))
        .order_by(TransferRequestEvent.id)
    )
    return (await session.execute(statement)).scalars().all()


def _transfers(states: Sequence[str]) -> Select[TransferRequest, Client]:
    statement = select(TransferRequest, Client).join(Client, Client.id == TransferRequest.client_id)
    if states:
        statement = statement.where(TransferRequest.state.in_(states))
    return statement.order_by(TransferRequest.id)


async def page_transfers(
    session: AsyncSession, states: Sequence[str], *, after_id: int | None, limit: int
) -> Sequence[tuple[TransferRequest, Client]]:
    """Transfer requests (with their clients) oldest first, after `after_id`."""
    statement = _transfers(states).limit(limit)
    if after_id is not None:
        statement = statement.where(TransferRequest.id > after_id)
    rows = (await session.execute(statement)).all()
    return [(row[0], row[1]) for row in rows]


async def stream_transfers(
    session: AsyncSession, states: Sequence[str]
) -> AsyncIterator[tuple[TransferRequest, Client]]:
    """Every matching transfer request with its client, a batch at a time."""
    result = await session.stream(_transfers(states).execution_options(yield_per=EXPORT_BATCH))
    async for row in result:
        yield row[0], row[1]
