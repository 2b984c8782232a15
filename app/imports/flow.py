"""Running an import's rows (a flow: it opens its own short transactions around CTCT calls).

1. Login names are looked up in our store (one query) so renamed accounts still match by id.
2. Our partner list is read **once** (`limit=50`, background priority, through the shared
   budget) and each account matched against the file's ids and names: rows whose accounts are
   in our list cost ⌈N/50⌉ list calls in all, never a call each.
3. An account neither listed nor known to us (or known only as `unverified`) is probed once
   (`GET …/plan`) to tell "not ours" from "no such account".
4. Rows are applied in batches, each in one transaction (`app.imports.applier`); a dry run rolls
   every batch back, so it writes nothing to the store.

A listing that stops (a CTCT error, the day's budget) applies nothing: the import fails and may
be run again; re-running a file changes nothing more than the first run did.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import mirror as clients_mirror
from app.clients import service as clients_service
from app.clients.evidence import Membership
from app.clients.models import ClientStatus
from app.ctct.client import LIST_LIMIT_MAX, CtctClient
from app.ctct.errors import CtctError
from app.ctct.priorities import Priority
from app.ctct.schemas import SiteOwner
from app.db import utcnow
from app.imports.applier import Context, RowResult, Target, apply_batch
from app.imports.csv_rows import RowIn
from app.imports.models import Phase
from app.membership import probe as membership_probe

log = structlog.get_logger(__name__)

BATCH = 200


@dataclass
class CallCounter:
    """This import's CTCT requests by kind (the hook of its own CTCT client)."""

    token_path: str
    list_calls: int = 0
    probe_calls: int = 0
    token_calls: int = 0

    async def on_request(self, request: httpx.Request) -> None:
        path = request.url.path
        if path == self.token_path:
            self.token_calls += 1
        elif path.endswith("/plan"):
            self.probe_calls += 1
        else:
            self.list_calls += 1


@dataclass
class Progress:
    """Where a run is; handed to the progress callback after every page and batch."""

    phase: Phase
    rows_total: int
    rows_done: int = 0
    pages_read: int = 0
    accounts_listed: int = 0


ProgressFn = Callable[[Progress], Awaitable[None]]
# Where a batch's results go in its own transaction (a stored import's rows), if anywhere.
RecordFn = Callable[[AsyncSession, Sequence[RowResult]], Awaitable[None]]


@dataclass
class RunResult:
    """Every row's result in file order, or the error that stopped the listing."""

    results: list[RowResult] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Listing:
    by_id: dict[str, SiteOwner] = field(default_factory=dict)
    by_name: dict[str, SiteOwner] = field(default_factory=dict)


def _name(row: RowIn) -> str | None:
    return row.login_name.lower() if row.encoded_account_id is None and row.login_name else None


async def _read_list(
    ctct: CtctClient, ids: set[str], names: set[str], progress: Progress, report: ProgressFn
) -> _Listing:
    listing = _Listing()
    async for page in ctct.iter_account_pages(limit=LIST_LIMIT_MAX, priority=Priority.BACKGROUND):
        for account in page.accounts:
            if account.encoded_account_id in ids:
                listing.by_id.setdefault(account.encoded_account_id, account)
            owner = (account.site_owner_name or "").lower()
            if owner in names:
                listing.by_name.setdefault(owner, account)
        progress.pages_read += 1
        progress.accounts_listed += len(page.accounts)
        await report(progress)
    return listing


def _resolve(rows: Sequence[RowIn], listing: _Listing, known_names: dict[str, str]) -> list[Target]:
    targets: list[Target] = []
    first_line: dict[str, int] = {}
    for row in rows:
        if row.problem is not None:
            targets.append(Target(row, row.encoded_account_id, refusal=row.problem))
            continue
        name = _name(row)
        if name is None:
            account_id: str | None = row.encoded_account_id
            listed = listing.by_id.get(account_id or "")
        elif name in listing.by_name:
            listed = listing.by_name[name]
            account_id = listed.encoded_account_id
        else:
            account_id = known_names.get(name)
            listed = listing.by_id.get(account_id or "")
        if account_id is not None and account_id in first_line:
            refusal = f"the same account as line {first_line[account_id]}"
            targets.append(Target(row, account_id, refusal=refusal))
            continue
        if account_id is not None:
            first_line[account_id] = row.line
        targets.append(Target(row, account_id, listed))
    return targets


async def _probe_unknown(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctct: CtctClient,
    targets: list[Target],
    progress: Progress,
    report: ProgressFn,
) -> list[Target]:
    unlisted = [t for t in targets if t.refusal is None and t.account_id and t.listed is None]
    async with sessionmaker() as session:
        known = await clients_service.known_among(
            session, [t.account_id for t in unlisted if t.account_id]
        )
    asked: dict[str, Target] = {}
    for target in unlisted:
        assert target.account_id is not None
        client = known.get(target.account_id)
        if client is not None and client.status != ClientStatus.UNVERIFIED.value:
            continue
        progress.phase = Phase.PROBING
        evidence = await membership_probe.ask(ctct, target.account_id)
        if evidence.membership is Membership.UNKNOWN:
            refusal = "CTCT could not say whose account it is now; run the import again later"
            asked[target.account_id] = Target(target.row, target.account_id, refusal=refusal)
        else:
            asked[target.account_id] = Target(target.row, target.account_id, probed=evidence)
        await report(progress)
    return [
        asked.get(t.account_id, t) if t.account_id is not None and t.refusal is None else t
        for t in targets
    ]


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctct: CtctClient,
    rows: Sequence[RowIn],
    *,
    actor_name: str,
    import_id: int | None,
    dry_run: bool,
    report: ProgressFn,
    record: RecordFn | None = None,
) -> RunResult:
    """Apply `rows` (a dry run rolls every change back); `record` stores each batch's results."""
    progress = Progress(Phase.LISTING, rows_total=len(rows))
    names = {name for row in rows if row.problem is None and (name := _name(row))}
    async with sessionmaker() as session:
        known_names = await clients_mirror.ids_by_names(session, sorted(names))
    ids = {row.encoded_account_id for row in rows if row.encoded_account_id}
    ids.update(known_names.values())
    started_at = utcnow()
    started = time.monotonic()
    await report(progress)
    try:
        listing = await _read_list(ctct, ids, names, progress, report)
        if not dry_run:
            async with sessionmaker() as session, session.begin():
                await clients_mirror.listing_completed(
                    session,
                    source="import",
                    started_at=started_at,
                    accounts=progress.accounts_listed,
                )
        targets = await _probe_unknown(
            sessionmaker, ctct, _resolve(rows, listing, known_names), progress, report
        )
    except CtctError as exc:
        log.warning("imports.run.list_stopped", import_id=import_id, error_type=type(exc).__name__)
        return RunResult(error=f"CTCT stopped the import: {type(exc).__name__}: {exc}"[:500])
    context = Context(actor_name=actor_name, listed_at=started_at, import_id=import_id)
    progress.phase = Phase.APPLYING
    results: list[RowResult] = []
    for start in range(0, len(targets), BATCH):
        batch = await _apply(sessionmaker, targets[start : start + BATCH], context, dry_run, record)
        results.extend(batch)
        progress.rows_done = len(results)
        await report(progress)
    progress.phase = Phase.DONE
    await report(progress)
    log.info(
        "imports.run.applied",
        import_id=import_id,
        rows=len(results),
        pages=progress.pages_read,
        dry_run=dry_run,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return RunResult(results=results)


async def _apply(
    sessionmaker: async_sessionmaker[AsyncSession],
    targets: Sequence[Target],
    context: Context,
    dry_run: bool,
    record: RecordFn | None,
) -> list[RowResult]:
    """One batch in one transaction: committed with its results, or (dry run) rolled back."""
    async with sessionmaker() as session:
        transaction = await session.begin()
        try:
            results = await apply_batch(session, targets, context)
            if dry_run:
                await transaction.rollback()
            else:
                if record is not None:
                    await record(session, results)
                await transaction.commit()
        except BaseException:
            if transaction.is_active:
                await transaction.rollback()
            raise
    if dry_run and record is not None:
        async with sessionmaker() as session, session.begin():
            await record(session, results)
    return results
