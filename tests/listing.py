"""Reading our partner list in tests: one complete audit against the in-process sandbox."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import runner
from app.audit.models import AuditRun, AuditTrigger
from app.ctct.client import build_ctct_client
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings

LIST_PATH = "/v3/partner/accounts"


async def audit(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    sandbox: SandboxState,
) -> AuditRun:
    """Run one audit to its end; fail the test unless it completed."""
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    async with build_ctct_client(settings.ctct, engine=engine, transport=transport) as ctct:
        run = await runner.run_once(sessionmaker, settings, ctct, trigger=AuditTrigger.CLI)
    assert run is not None
    assert run.state == "completed", (run.state, run.error)
    return run


def list_calls(sandbox: SandboxState) -> int:
    """How many partner-list pages the sandbox has served."""
    return len(sandbox.calls.calls(LIST_PATH, "GET"))
