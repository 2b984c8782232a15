"""How rows find their accounts: a login name we know resolves to its id even when the partner
list shows another name, and a second row for the same account is refused."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clients.models import ClientStatus
from app.imports import runner
from app.imports import service as imports_service
from app.imports.csv_rows import RowIn
from app.imports.models import Wish
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.audit.conftest import put_clients


async def test_a_known_login_name_resolves_by_id_and_duplicates_are_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandboxed_settings: Settings,
    sandbox: SandboxState,
) -> None:
    account = sandbox.seed_account(login_name="renamed_in_ctct")
    await put_clients(sessionmaker, [account.encoded_account_id], ClientStatus.OTHER_PARTNER)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE client SET login_name = 'Legacy_Login' WHERE encoded_account_id = :id"),
            {"id": account.encoded_account_id},
        )
        job = await imports_service.create(
            session,
            [
                RowIn(2, None, "LEGACY_LOGIN", Wish.APPROVED, None),
                RowIn(3, account.encoded_account_id, None, None, None),
            ],
            filename=None,
            requested_by="ops",
            dry_run=False,
            queue=False,
        )

    finished = await runner.run_import(
        sessionmaker,
        engine,
        sandboxed_settings,
        job.id,
        transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
    )

    assert finished is not None
    report = [line async for line in imports_service.report_csv(sessionmaker, job.id)]
    assert finished.outcomes == {"approved_by_evidence": 1, "refused": 1}
    assert "other_partner -> approved" in report[1]
    assert account.encoded_account_id in report[1]
    assert "the same account as line 2" in report[2]
