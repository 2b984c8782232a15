"""Helpers for the tests that drive the clients API over HTTP."""

from __future__ import annotations

import httpx

from app.clients.evidence import Membership
from tests.conftest import Headers, Seed

M = Membership


async def status_of(http: httpx.AsyncClient, headers: Headers, account_id: str) -> str:
    response = await http.get(f"/v1/clients/{account_id}", headers=headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert field in {error["field"] for error in response.json()["errors"]}


async def register(
    http: httpx.AsyncClient, headers: Headers, account_id: str, token: str | None = None
) -> dict[str, object]:
    body: dict[str, object] = {"encoded_account_id": account_id}
    if token:
        body["access_token"] = token
    response = await http.post("/v1/clients", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    result: dict[str, object] = response.json()
    return result


async def seed_many(seed: Seed, count: int) -> None:
    memberships = [M.OURS, M.OTHER_PARTNER, M.NO_PARTNER, M.UNKNOWN]
    for n in range(count):
        await seed(
            f"acct-{n:03d}",
            memberships[n % 4],
            organization_name=f"Org {n % 7}" if n % 5 else "",
            contact_email=f"owner{n}@example.com",
        )
