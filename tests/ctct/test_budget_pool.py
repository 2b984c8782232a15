"""The budget's transactions pace every CTCT call: they never queue for a pooled connection.

Seen in bench/provision.py: 200 creates arriving at once held every connection of the API's
pool, the budget's grants and slot moves waited behind them, and calls went 300-500 ms after
their slots (a 1.26 s hole in CTCT's rate).
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from app.ctct.client import build_ctct_client
from app.db import create_engine
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from tests.ctct.conftest import ctct_settings


async def test_a_call_is_granted_while_every_pooled_connection_is_busy(
    database_url: str, sandbox: SandboxState
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=60)
    sandbox.seed_accounts(3, partner="ours")
    busy = asyncio.Event()
    done = asyncio.Event()

    async def hold_the_only_connection() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            busy.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_only_connection())
    try:
        await busy.wait()
        async with build_ctct_client(
            ctct_settings(),
            engine=engine,
            transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
        ) as ctct:
            async with asyncio.timeout(20):  # the pool would hold it for 60 s
                page = await ctct.list_accounts_page()
        assert len(page.accounts) == 3
    finally:
        done.set()
        await holder
        await engine.dispose()
