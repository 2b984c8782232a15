"""Accounts new to the store, added by the audit: every effect kept, in batches per page.

The newest accounts come last in our partner list, so a run meets them page after page. One
by one (a locked read, a savepoint, four inserts and a notification each), a page of 50 new
accounts took the applier about a second, against CTCT's 67 ms per page at 15/s: the read-
ahead filled and the listing stood still (bench/audit.py, 5 s of a 143 s run at N = 100,000).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import AuditState
from app.clients.models import ClientStatus
from tests.audit.conftest import Auditor, audit_events, put_clients, statuses

NEW = 150  # three pages of 50


@contextmanager
def inserts_counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """The INSERT statements the engine sends while the block runs (procrastinate's defer
    function included: it inserts the job)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        head = statement.lstrip().upper()
        if head.startswith("INSERT") or "PROCRASTINATE_DEFER" in head:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_new_accounts_are_added_with_history_webhook_and_job_in_a_few_inserts_per_page(
    auditor: Auditor, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    known = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(50, partner="ours")]
    new = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(NEW, partner="ours")]
    await put_clients(sessionmaker, known, ClientStatus.APPROVED)

    with inserts_counted(engine) as inserts:
        run = await auditor.run()

    assert (run.state, run.clients_seen, run.clients_added) == (
        AuditState.COMPLETED,
        len(known) + NEW,
        NEW,
    )
    # Per page of new accounts: clients, their status events, webhook events, fan-out jobs,
    # audit_seen; the run's own rows besides. One by one it was over 600.
    assert len(inserts) <= 4 * 10, inserts[:12]
    after = await statuses(sessionmaker)
    assert all(after[account] == "approved" for account in new)
    assert sorted(await audit_events(sessionmaker, run.id)) == sorted(
        (account, None, "approved") for account in new
    )
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT c.encoded_account_id, c.verified_via, c.evidence_status, "
                    "c.site_owner_name IS NOT NULL, e.payload -> 'data' ->> 'status_event_id', "
                    "s.id, j.status "
                    "FROM client c JOIN status_event s ON s.client_id = c.id "
                    "JOIN webhook_event e ON e.payload -> 'data' ->> 'encoded_account_id' "
                    "= c.encoded_account_id "
                    "JOIN procrastinate_jobs j "
                    "ON j.queueing_lock = 'webhooks-event-' || e.event_id "
                    "WHERE c.encoded_account_id = ANY(:new)"
                ),
                {"new": new},
            )
        ).all()
    assert len(rows) == NEW
    for account, via, evidence, mirrored, event_ref, status_event, job in rows:
        assert (via, evidence, mirrored, job) == ("partner_list", "approved", True, "todo"), account
        assert event_ref == str(status_event)


async def test_an_account_added_meanwhile_by_another_writer_is_not_added_twice(
    auditor: Auditor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A probe may add an account between the page's read of the store and its insert."""
    new = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(60, partner="ours")]
    await put_clients(sessionmaker, new[10:11], ClientStatus.UNVERIFIED)

    run = await auditor.run()

    assert (run.clients_added, run.clients_changed) == (59, 1)
    events = await audit_events(sessionmaker, run.id)
    assert (new[10], "unverified", "approved") in events
    assert len(events) == 60
