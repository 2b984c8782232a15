"""API keys: bearer auth with scopes, problem responses, and the `partnergate keys` CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service as keys_service
from app.auth.models import ApiKey
from app.auth.scopes import Scope
from app.auth.service import VERIFIED_KEY_TTL_SECONDS, Principal
from app.cli import main as cli_main
from app.deps import require
from app.main import create_app
from app.settings import Settings
from tests.conftest import ApiKeyFactory
from tests.kit.polling import poll_until

guarded = APIRouter()


@guarded.get("/guarded")
async def guarded_route(
    principal: Annotated[Principal, Depends(require(Scope.CLIENTS_READ))],
) -> dict[str, str]:
    return {"caller": principal.name}


@pytest.fixture
async def guarded_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    application.include_router(guarded)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def _assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["title"]
    assert body["detail"]


async def test_no_key_is_401_with_a_bearer_challenge(guarded_client: httpx.AsyncClient) -> None:
    response = await guarded_client.get("/guarded")

    _assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_is_401(guarded_client: httpx.AsyncClient) -> None:
    response = await guarded_client.get(
        "/guarded", headers={"Authorization": "Bearer pgk_not-a-real-key"}
    )

    _assert_problem(response, 401, "unauthorized")


async def test_key_without_the_scope_is_403(
    guarded_client: httpx.AsyncClient, api_key: ApiKeyFactory
) -> None:
    secret = await api_key(Scope.ACCESS_CHECK)

    response = await guarded_client.get("/guarded", headers={"Authorization": f"Bearer {secret}"})

    _assert_problem(response, 403, "forbidden")
    assert "clients:read" in response.json()["detail"]


async def test_key_with_the_scope_passes_and_records_last_use(
    guarded_client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    secret = await api_key(Scope.CLIENTS_READ, name="dashboard")

    response = await guarded_client.get("/guarded", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200
    assert response.json() == {"caller": "dashboard"}

    async def stored() -> ApiKey:
        async with sessionmaker() as session:
            query = select(ApiKey).where(ApiKey.name == "dashboard")
            return (await session.execute(query)).scalar_one()

    # Written in the background, off the request path.
    key = await poll_until(stored, lambda k: k.last_used_at is not None, timeout=10)
    assert key.secret_hash != secret
    assert secret not in key.secret_hash


def test_cli_creates_lists_and_revokes_keys(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert cli_main(["keys", "create", "--name", "ops", "--scopes", "clients:read,audits:run"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("pgk_")

    assert cli_main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ops" in listing
    assert "audits:run" in listing
    assert secret not in listing

    assert cli_main(["keys", "revoke", "--name", "ops"]) == 0
    assert cli_main(["keys", "revoke", "--name", "nobody"]) == 2
    assert "no API key named 'nobody'" in capsys.readouterr().err


def test_cli_rejects_unknown_scopes(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert cli_main(["keys", "create", "--name", "x", "--scopes", "clients:read,root"]) == 2
    assert "unknown scope(s): root" in capsys.readouterr().err


async def test_revoked_key_is_refused_within_seconds(
    guarded_client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    secret = await api_key(Scope.CLIENTS_READ, name="leaver")
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await guarded_client.get("/guarded", headers=headers)).status_code == 200

    async with sessionmaker() as session, session.begin():
        await keys_service.revoke_key(session, "leaver")

    response = await poll_until(
        lambda: guarded_client.get("/guarded", headers=headers),
        lambda r: r.status_code != 200,
        timeout=VERIFIED_KEY_TTL_SECONDS + 3,
    )
    _assert_problem(response, 401, "unauthorized")
