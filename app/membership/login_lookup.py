"""Lookup by login name: the retired `API_GetSiteOwnerID`'s question, asked of our mirror.

A name matches a client whose login name or site-owner name (from our partner list) is exactly
it, ignoring case; the answer is the same decision as by id. A name that matches nobody was in
none of our listings: the answer says so with the time of our last complete listing.

`?consistency=fresh` reads our partner list first (interactive priority, within
`ACCESS_LIST_TIMEOUT` and the shared call budget), stopping as soon as the name turns up:

- the name is listed: that account is ours; the evidence is recorded and decides;
- the list was read to its end without the name: that is a complete listing; a client we know by
  this name whose id was not listed either is probed by id (the by-id fresh check), since a
  renamed account is still the same account;
- CTCT could not finish in time: the answer comes from the store, `reason: ctct_unavailable`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from app.clients import mirror as clients_mirror
from app.clients import policy
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import Client, EventSource, VerifiedVia
from app.ctct.client import LIST_LIMIT_MAX
from app.ctct.errors import CtctError
from app.ctct.priorities import Priority
from app.ctct.schemas import SiteOwner
from app.db import utcnow
from app.state import AppState

log = structlog.get_logger(__name__)

STATUS_UNKNOWN = "unknown"
REASON_NOT_LISTED = "not_in_partner_list"
REASON_NEVER_LISTED = "no_complete_listing"
REASON_CTCT_UNAVAILABLE = "ctct_unavailable"
REASON_IN_LIST = "in_partner_list"
# Clients one name may match (CTCT's login names are unique; a site-owner name need not be).
MATCH_LIMIT = 5


@dataclass
class ListRead:
    """What one read of our partner list found for a name and a few ids."""

    started_at: datetime
    complete: bool = False
    pages: int = 0
    accounts: int = 0
    found: dict[str, SiteOwner] = field(default_factory=dict)
    error: str | None = None


def _owner_matches(account: SiteOwner, name: str) -> bool:
    return account.site_owner_name is not None and account.site_owner_name.lower() == name


async def read_partner_list(
    state: AppState, name: str, ids: set[str], *, seconds: float
) -> ListRead:
    """Page our partner list for `name` (and `ids`) until found, the list ends or time is up."""
    wanted = name.lower()
    read = ListRead(started_at=utcnow())
    deadline = time.monotonic() + seconds
    href: str | None = None
    seen: set[str] = set()
    links: set[str] = set()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            read.error = "the time for reading the partner list ran out"
            return read
        try:
            page = await state.ctct.list_accounts_page(
                limit=LIST_LIMIT_MAX,
                next_href=href,
                priority=Priority.INTERACTIVE,
                max_wait=remaining,
            )
        except CtctError as exc:
            read.error = f"{type(exc).__name__}: {exc}"[:300]
            return read
        read.pages += 1
        for account in page.accounts:
            if account.encoded_account_id in seen:
                continue
            seen.add(account.encoded_account_id)
            if _owner_matches(account, wanted) or account.encoded_account_id in ids:
                read.found[account.encoded_account_id] = account
        read.accounts = len(seen)
        if any(_owner_matches(account, wanted) for account in read.found.values()):
            return read
        if not page.next_href:
            read.complete = True
            return read
        if page.next_href in links:
            read.error = "the account list links back to a page already read"
            return read
        links.add(page.next_href)
        href = page.next_href


async def _record(state: AppState, read: ListRead, actor_name: str | None) -> None:
    """Write what the read proved: the listed accounts are ours; a full read is a listing."""
    actor = clients_service.Actor(EventSource.PROBE, name=actor_name)
    async with state.sessionmaker() as session, session.begin():
        for account_id, account in read.found.items():
            attributes = MirroredAttributes(
                site_owner_name=account.site_owner_name,
                organization_name=account.organization_name,
                billing_status=account.billing_status,
                subscriber_count=account.subscriber_count,
                last_login_date=account.last_login_date,
            )
            evidence = Evidence(
                Membership.OURS, VerifiedVia.PARTNER_LIST, REASON_IN_LIST, attributes
            )
            await clients_service.record_evidence(session, account_id, evidence, actor)
        if read.complete:
            await clients_mirror.listing_completed(
                session, source="lookup", started_at=read.started_at, accounts=read.accounts
            )


async def _matches(state: AppState, name: str) -> tuple[list[Client], datetime | None]:
    async with state.sessionmaker() as session:
        clients = list(await clients_mirror.find_by_name(session, name, limit=MATCH_LIMIT))
        listing = await clients_mirror.last_complete_listing(session)
    return clients, listing.completed_at if listing is not None else None


def _matched_by(client: Client, name: str) -> str:
    login = client.login_name
    return (
        "login_name" if login is not None and login.lower() == name.lower() else "site_owner_name"
    )


def _from_client(state: AppState, client: Client) -> dict[str, Any]:
    """The decision for a client just recorded (the cache may not have heard of it yet)."""
    unaffiliated = state.settings.unaffiliated_access
    verified = client.verified_at
    return {
        "account_id": client.encoded_account_id,
        "allowed": policy.allows(client.status, unaffiliated),
        "status": client.status,
        "reason": policy.reason(client.status, unaffiliated),
        "verified_at": verified.isoformat() if verified is not None else None,
        "stale": False,
    }


def _unknown(name: str, listed_at: datetime | None) -> dict[str, Any]:
    return {
        "login_name": name,
        "account_id": None,
        "allowed": False,
        "status": STATUS_UNKNOWN,
        "reason": REASON_NOT_LISTED if listed_at is not None else REASON_NEVER_LISTED,
        "verified_at": None,
        "stale": False,
        "matched_by": None,
        "last_complete_listing_at": listed_at.isoformat() if listed_at is not None else None,
    }


async def lookup(
    state: AppState, name: str, *, fresh: bool, actor_name: str | None
) -> dict[str, Any]:
    """The access decision for the client known by `name`, or why there is none."""
    clients, listed_at = await _matches(state, name)
    read: ListRead | None = None
    if fresh:
        read = await read_partner_list(
            state,
            name,
            {client.encoded_account_id for client in clients},
            seconds=state.settings.access.list_timeout,
        )
        await _record(state, read, actor_name)
        log.info(
            "membership.login_lookup.list_read",
            complete=read.complete,
            pages=read.pages,
            found=len(read.found),
            error=read.error,
        )
        clients, listed_at = await _matches(state, name)
    if not clients:
        return _unknown(name, listed_at)
    client = clients[0]
    extra = {
        "login_name": name,
        "matched_by": _matched_by(client, name),
        "last_complete_listing_at": listed_at.isoformat() if listed_at is not None else None,
    }
    account_id = client.encoded_account_id
    if read is None:
        decision = await state.access.check(account_id, actor_name=actor_name)
    elif account_id in read.found:
        decision = _from_client(state, client)
    elif read.complete:
        # Known by this name but absent from a complete listing: ask CTCT about the id itself.
        decision = await state.access.check_fresh(account_id, actor_name=actor_name)
    else:
        decision = await state.access.check(account_id, actor_name=actor_name)
        decision = {**decision, "reason": REASON_CTCT_UNAVAILABLE}
    return {**decision, **extra}
