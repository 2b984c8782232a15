"""Fixtures for the membership tests: a CTCT client whose upstream is the in-process sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.client import CtctClient, build_ctct_client
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings


@pytest.fixture
async def ctct(
    sandboxed_settings: Settings, engine: AsyncEngine, sandbox: SandboxState
) -> AsyncIterator[CtctClient]:
    """The production CTCT client, speaking real HTTP to the sandbox."""
    client = build_ctct_client(
        sandboxed_settings.ctct,
        engine=engine,
        transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
    )
    yield client
    await client.aclose()
