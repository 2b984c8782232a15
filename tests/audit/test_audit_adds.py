"""Accounts new to the store, added by the audit: every effect kept, in batches per page.

The newest accounts come last in our partner list, so a run meets them page after page. One
by one (a locked read, a savepoint, four inserts and a notification each), a page of 50 new
accounts took the applier about a second, against CTCT's 67 ms per page at 15/s: the read-
ahead filled and the listing stood still (bench/audit.py, 5 s of a 143 s run at N = 100,000).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import AuditState
from app.clients.models import ClientStatus
from tests.audit.conftest import Auditor, audit_events, put_clients, statuses
from tests.kit.engine_events import engine_events

NEW = 150  # three pages of 50


def _an_insert(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> bool:
    """An INSERT statement (procrastinate's defer function included: it inserts the job)."""
    head = statement.lstrip().upper()
    return head.startswith("INSERT") or "PROCRASTINATE_DEFER" in head


async def test_new_accounts_are_added_with_history_webhook_and_job_in_a_few_inserts_per_page(
    auditor: Auditor, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    known = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(50, partner="ours")]
    new = [a.encoded_account_id for a in auditor.sandbox.seed_accounts(NEW, partner="ours")]
    await put_clients(sessionmaker, known, ClientStatus.APPROVED)

    with engine_events(engine, "before_cursor_execute", _an_insert) as inserts:
        run = await auditor.run()

    assert (run.state, run.clients_seen, run.clients_added) == (
        AuditState.COMPLETED,
        len(known) + NEW,
        NEW,
    )
    # Per page of new accounts: clients, their status events, webhook events, fan-out jobs,
    # audit_seen; the run's own rows besides. One by one it was over 600.
    assert len(inserts) <= 4 * 10, [statement for _, _, statement, *_ in inserts[:12]]
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
