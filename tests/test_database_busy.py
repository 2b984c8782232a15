"""A database the process cannot reach in time is the server's trouble: 503 with Retry-After,
never a 500 that tells the caller its request was at fault."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from app.main import create_app
from tests.conftest import ApiKeyFactory, build_settings


@pytest.fixture
async def one_connection_app(database_url: str) -> AsyncIterator[FastAPI]:
    settings = build_settings(
        database_url,
        database={"url": database_url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 0.5},
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_request_that_finds_every_connection_taken_is_answered_503_with_retry_after(
    one_connection_app: FastAPI, api_key: ApiKeyFactory
) -> None:
    headers = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}
    transport = httpx.ASGITransport(app=one_connection_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/v1/clients", headers=headers)).status_code == 200
        async with one_connection_app.state.resources.engine.connect():  # the only connection
            busy = await http.get("/v1/clients", headers=headers)
        assert busy.status_code == 503
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["type"].endswith("/database-busy")
        assert (await http.get("/v1/clients", headers=headers)).status_code == 200
