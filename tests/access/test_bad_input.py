"""Bad input and missing permission get problem responses."""

from __future__ import annotations

import httpx
import pytest

from app.auth.scopes import Scope
from tests.conftest import ApiKeyFactory

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("account_id", ["bad!id", "a" * 65, "sp%20ace", "d.ot"])
async def test_a_malformed_id_is_a_400_problem(
    client: httpx.AsyncClient, checker: dict[str, str], account_id: str
) -> None:
    response = await client.get(f"/v1/access/{account_id}", headers=checker)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "encoded_account_id"


async def test_an_unknown_consistency_is_a_400_problem(
    client: httpx.AsyncClient, checker: dict[str, str]
) -> None:
    response = await client.get("/v1/access/acct-1?consistency=strong", headers=checker)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "consistency"


async def test_a_batch_of_1001_is_a_400_problem(
    client: httpx.AsyncClient, checker: dict[str, str]
) -> None:
    ids = [f"acct-{n}" for n in range(1001)]

    response = await client.post("/v1/access:batch", json={"account_ids": ids}, headers=checker)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "account_ids"


async def test_a_malformed_id_in_a_batch_is_named(
    client: httpx.AsyncClient, checker: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/access:batch", json={"account_ids": ["ok-1", "not ok"]}, headers=checker
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "account_ids.1", "message": response.json()["errors"][0]["message"]}
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/v1/access/acct-1", None), ("POST", "/v1/access:batch", {"account_ids": ["a"]})],
)
async def test_a_key_without_access_check_is_forbidden(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    headers = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}

    response = await client.request(method, path, json=body, headers=headers)

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM


async def test_no_key_is_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/access/acct-1")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
