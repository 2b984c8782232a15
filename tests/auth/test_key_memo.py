"""The API key memo under concurrency: one database read per key however many requests want it,
re-read ahead of expiry in the background, and `last_used_at` written off the request path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.scopes import Scope
from app.auth.service import (
    LAST_USED_RESOLUTION_SECONDS,
    REFRESH_AHEAD_SECONDS,
    VERIFIED_KEY_TTL_SECONDS,
)
from app.clients.evidence import Membership
from tests.conftest import ApiKeyFactory, Seed

CONCURRENT_CHECKS = 200


@contextmanager
def key_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The first word (SELECT, UPDATE) of every statement on `api_key` sent while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        if "api_key" in statement and words:
            seen.append(words[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def _primed(app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert (await client.get("/v1/access/acct-memo", headers=headers)).status_code == 200
    # The first use's last_used_at write is out of the way before counting.
    await app.state.resources.key_verifier.settle()


async def _checks(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    responses = await asyncio.gather(
        *(client.get("/v1/access/acct-memo", headers=headers) for _ in range(CONCURRENT_CHECKS))
    )
    return [response.status_code for response in responses]


async def test_200_checks_arriving_as_a_keys_memo_expires_read_the_key_once(
    app: FastAPI, client: httpx.AsyncClient, api_key: ApiKeyFactory, seed: Seed
) -> None:
    await seed("acct-memo", Membership.OURS)
    headers = {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}
    await _primed(app, client, headers)
    verifier = app.state.resources.key_verifier
    real_clock = verifier.clock
    # Every request from here on sees the memo just expired.
    verifier.clock = lambda: real_clock() + VERIFIED_KEY_TTL_SECONDS + 0.001

    with key_statements(app.state.resources.engine) as statements:
        statuses = await _checks(client, headers)

    assert statuses == [200] * CONCURRENT_CHECKS
    assert statements.count("SELECT") == 1


async def test_a_key_due_for_refresh_is_answered_from_memory_and_reread_once_behind(
    app: FastAPI, client: httpx.AsyncClient, api_key: ApiKeyFactory, seed: Seed
) -> None:
    await seed("acct-memo", Membership.OURS)
    headers = {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}
    await _primed(app, client, headers)
    verifier = app.state.resources.key_verifier
    real_clock = verifier.clock
    verifier.clock = lambda: real_clock() + REFRESH_AHEAD_SECONDS + 0.001

    with key_statements(app.state.resources.engine) as statements:
        statuses = await _checks(client, headers)
        await verifier.settle()

    assert statuses == [200] * CONCURRENT_CHECKS
    assert statements.count("SELECT") == 1


async def test_last_used_at_is_written_once_for_many_uses_and_off_the_request_path(
    app: FastAPI, client: httpx.AsyncClient, api_key: ApiKeyFactory, seed: Seed
) -> None:
    await seed("acct-memo", Membership.OURS)
    headers = {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}
    await _primed(app, client, headers)
    verifier = app.state.resources.key_verifier
    real_clock = verifier.clock
    # A minute later, inside a fresh memo: uses are due to be recorded again.
    verifier.clock = lambda: real_clock() + LAST_USED_RESOLUTION_SECONDS + 0.001

    with key_statements(app.state.resources.engine) as statements:
        statuses = await _checks(client, headers)
        await verifier.settle()

    assert statuses == [200] * CONCURRENT_CHECKS
    assert statements.count("UPDATE") == 1
