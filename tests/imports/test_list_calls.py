"""An import of 10,000 rows whose accounts are in our partner list spends ⌈10,000/50⌉ = 200 list
calls and no probe: the list is read once and matched, never probed account by account."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clients.models import ClientStatus
from app.imports import runner
from app.imports import service as imports_service
from app.imports.csv_rows import RowIn
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.audit.conftest import put_clients

ROWS = 10_000
KNOWN = 9_900


@pytest.mark.slow
async def test_10000_listed_rows_cost_200_list_calls_and_no_probes(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandboxed_settings: Settings,
    sandbox: SandboxState,
) -> None:
    accounts = [account.encoded_account_id for account in sandbox.seed_accounts(ROWS)]
    await put_clients(sessionmaker, accounts[:KNOWN], ClientStatus.APPROVED)
    rows = [RowIn(line, account, None, None, None) for line, account in enumerate(accounts, 2)]
    async with sessionmaker() as session, session.begin():
        job = await imports_service.create(
            session, rows, filename="10k.csv", requested_by="bench", dry_run=False, queue=False
        )

    finished = await runner.run_import(
        sessionmaker,
        engine,
        sandboxed_settings,
        job.id,
        transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
    )

    assert finished is not None
    assert finished.state == "completed", finished.error
    assert finished.outcomes == {"already_so": KNOWN, "added": ROWS - KNOWN}
    calls = sandbox.calls.calls("/v3/partner/")
    list_calls = [call for call in calls if call.path == "/v3/partner/accounts"]
    assert len(list_calls) == 200 == -(-ROWS // 50)
    assert len(calls) == 200  # not one plan probe
    assert (finished.list_calls, finished.probe_calls, finished.pages_read) == (200, 0, 200)
