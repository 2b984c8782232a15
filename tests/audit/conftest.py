"""Fixtures for the audit tests: an in-process sandbox, settings pointing at it, store helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import runner
from app.audit.models import AuditRun, AuditTrigger
from app.clients.models import ClientStatus
from app.ctct.client import build_ctct_client
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import build_settings, new_sandbox

LIST_PATH = "/v3/partner/accounts"
TOKEN_PATH = "/oauth2/token"


def audit_settings(database_url: str, **audit_overrides: object) -> Settings:
    """Test settings: the sandbox upstream with a generous budget and one read retry."""
    return build_settings(
        database_url,
        ctct={
            "rate_per_second": 1000.0,
            "daily_quota": 100_000,
            "interactive_reserve": 0,
            "timeout_seconds": 5.0,
            "read_retries": 1,
        },
        audit={"max_demotion_ratio": 0.1, **audit_overrides},
    )


@pytest.fixture
def sandbox() -> SandboxState:
    return new_sandbox(rate_per_second=100_000)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return audit_settings(database_url)


@dataclass
class Auditor:
    """Runs audits against the in-process sandbox."""

    sessionmaker: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: Settings
    sandbox: SandboxState

    async def run(self, trigger: AuditTrigger = AuditTrigger.CLI) -> AuditRun:
        transport = httpx.ASGITransport(app=create_sandbox_app(self.sandbox))
        async with build_ctct_client(
            self.settings.ctct, engine=self.engine, transport=transport
        ) as ctct:
            run = await runner.run_once(self.sessionmaker, self.settings, ctct, trigger=trigger)
        assert run is not None
        return run

    def list_calls(self) -> int:
        return len(self.sandbox.calls.calls(LIST_PATH, "GET"))

    def token_calls(self) -> int:
        return len(self.sandbox.calls.calls(TOKEN_PATH))


@pytest.fixture
def auditor(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    sandbox: SandboxState,
) -> Auditor:
    return Auditor(sessionmaker, engine, settings, sandbox)


StoreSeeder = Callable[..., object]


async def put_clients(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_ids: Sequence[str],
    status: ClientStatus,
    *,
    evidence_status: ClientStatus | None = None,
) -> None:
    """Insert clients straight into the store (a fixture shortcut: no events)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                """
                INSERT INTO client (encoded_account_id, status, evidence_status, status_reason,
                                    verified_at, verified_via, created_at, updated_at, version)
                SELECT id, :status, :evidence, 'fixture', now() - interval '2 days',
                       'partner_list', now() - interval '2 days', now() - interval '2 days', 1
                FROM unnest(CAST(:ids AS varchar[])) AS id
                """
            ),
            {
                "ids": list(account_ids),
                "status": status.value,
                "evidence": (evidence_status or status).value,
            },
        )


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        rows = await session.execute(text("SELECT encoded_account_id, status FROM client"))
        return {row[0]: row[1] for row in rows}


async def audit_events(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: int
) -> list[tuple[str, str | None, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT c.encoded_account_id, e.from_status, e.to_status FROM status_event e "
                "JOIN client c ON c.id = e.client_id WHERE e.audit_run_id = :run ORDER BY e.id"
            ),
            {"run": run_id},
        )
        return [(row[0], row[1], row[2]) for row in rows]
