"""The request-body limit (`app.kit.body_limit`): 413 before parsing and before authentication,
on API routes and on the public CTCT webhook endpoint, without reading the whole body."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from app.settings import Settings
from tests.conftest import ApiKeyFactory, build_settings

LIMIT = 4096
IMPORTS_LIMIT = 4 * LIMIT
CHUNK = 1024
ROUTES = ["/v1/clients", "/v1/accounts", "/v1/access:batch", "/v1/ctct/webhooks"]


class CountingBody:
    """A streamed (chunked) request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.total = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total):
            self.pulled += 1
            yield b"x" * CHUNK


@pytest.fixture
def settings(database_url: str) -> Settings:
    return build_settings(database_url, max_body_bytes=LIMIT, imports={"max_bytes": IMPORTS_LIMIT})


def _signature_shaped_like_ctcts() -> str:
    """A JWS header CTCT could send (fresh `ts`), so only the body limit can refuse it."""
    header = {"alg": "RS256", "kid": "k1", "ts": int(time.time()), "b64": False, "crit": ["b64"]}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    return f"{encoded}..c2lnbmF0dXJl"


def _assert_too_large(response: httpx.Response, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/body-too-large")
    assert str(limit) in problem["detail"]


@pytest.mark.parametrize("path", ROUTES)
async def test_a_declared_length_over_the_limit_is_413_before_auth_and_unread(
    client: httpx.AsyncClient, path: str
) -> None:
    body = CountingBody(64)

    response = await client.post(
        path,
        content=body,
        headers={"content-length": str(64 * CHUNK), "content-type": "application/json"},
    )

    _assert_too_large(response)
    assert body.pulled == 0


@pytest.mark.parametrize("path", ROUTES)
async def test_a_streamed_body_over_the_limit_is_413_and_read_no_further(
    client: httpx.AsyncClient, path: str
) -> None:
    # No API key at all: the limit comes before authentication.
    body = CountingBody(64)
    headers = {
        "content-type": "application/json",
        "x-ctct-signature": _signature_shaped_like_ctcts(),
    }

    response = await client.post(path, content=body, headers=headers)

    _assert_too_large(response)
    assert body.pulled <= LIMIT // CHUNK + 2, body.pulled


async def test_a_body_at_the_limit_is_read_and_parsed(client: httpx.AsyncClient) -> None:
    filler = "a" * (LIMIT - len('{"account_ids":[""]}'))
    body = json.dumps({"account_ids": [filler]}, separators=(",", ":")).encode()
    assert len(body) == LIMIT

    response = await client.post(
        "/v1/access:batch", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 401  # read in full, then authentication


async def test_the_default_limit_is_256_kib(app: FastAPI) -> None:
    assert Settings(_env_file=None).max_body_bytes == 256 * 1024


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_authenticated_caller_gets_the_same_413_unread(
    client: httpx.AsyncClient, api_key: ApiKeyFactory, declared: bool
) -> None:
    key = await api_key(Scope.ACCOUNTS_PROVISION, name="provisioner")
    body = CountingBody(64)
    headers = {
        "Authorization": f"Bearer {key}",
        "content-type": "application/json",
        "Idempotency-Key": "k-1",
    }
    if declared:
        headers["content-length"] = str(64 * CHUNK)

    response = await client.post("/v1/accounts", content=body, headers=headers)

    _assert_too_large(response)
    assert body.pulled <= (0 if declared else LIMIT // CHUNK + 2), body.pulled


async def test_an_import_file_may_pass_max_body_bytes_up_to_imports_max_bytes(
    client: httpx.AsyncClient, api_key: ApiKeyFactory
) -> None:
    key = await api_key(Scope.CLIENTS_DECIDE, name="importer")
    rows = "".join(f"a{index:011d},,,\r\n" for index in range(600))
    csv_body = ("encoded_account_id,login_name,wish,note\r\n" + rows).encode()
    assert LIMIT < len(csv_body) <= IMPORTS_LIMIT
    headers = {"Authorization": f"Bearer {key}", "content-type": "text/csv"}

    response = await client.post("/v1/imports?dry_run=true", content=csv_body, headers=headers)

    assert response.status_code == 202, response.text


async def test_an_import_file_past_imports_max_bytes_is_413_unread(
    client: httpx.AsyncClient,
) -> None:
    body = CountingBody(IMPORTS_LIMIT // CHUNK + 8)
    headers = {"content-type": "text/csv", "content-length": str(body.total * CHUNK)}

    response = await client.post("/v1/imports", content=body, headers=headers)

    _assert_too_large(response, IMPORTS_LIMIT)
    assert body.pulled == 0
