"""`GET /v1/provisioning`: the dashboard's list, newest first, in pages with signed cursors."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.provisioning.conftest import PASSWORD, body_for, unique_login


async def _provision(api: httpx.AsyncClient, count: int, prefix: str) -> None:
    for number in range(count):
        response = await api.post(
            "/v1/accounts",
            json=body_for(unique_login()),
            headers={"Idempotency-Key": f"{prefix}-{number}"},
        )
        assert response.status_code == 201


async def _walk(
    api: httpx.AsyncClient, params: dict[str, Any]
) -> tuple[list[list[int]], list[str]]:
    """Every page of the listing, following next_cursor: the ids per page and the bodies."""
    pages: list[list[int]] = []
    texts: list[str] = []
    cursor = None
    while True:
        response = await api.get(
            "/v1/provisioning", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        texts.append(response.text)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages, texts


async def test_the_dashboard_lists_requests_by_state_with_a_cursor(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    await _provision(api, 3, "list")
    taken = unique_login()
    await sandbox.post("/_sandbox/accounts", json={"login_name": taken})
    await api.post("/v1/accounts", json=body_for(taken), headers={"Idempotency-Key": "list-x"})

    pages, texts = await _walk(api, {"state": "succeeded", "limit": 2})
    failed = await api.get("/v1/provisioning", params={"state": "failed"})
    first = await api.get("/v1/provisioning", params={"state": "succeeded", "limit": 2})
    bad_cursor = await api.get("/v1/provisioning", params={"cursor": "nonsense"})
    # A cursor is bound to its listing: the succeeded list's cursor means nothing elsewhere.
    foreign_cursor = await api.get(
        "/v1/provisioning", params={"state": "failed", "cursor": first.json()["next_cursor"]}
    )
    # The old unsigned `id:N` cursors are refused.
    unsigned = base64.urlsafe_b64encode(b"id:3").decode().rstrip("=")
    old_cursor = await api.get("/v1/provisioning", params={"cursor": unsigned})

    assert pages == [[3, 2], [1]]
    assert [item["login_name"] for item in failed.json()["items"]] == [taken]
    assert failed.json()["next_cursor"] is None
    for refused in (bad_cursor, foreign_cursor, old_cursor):
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "cursor"
    assert PASSWORD not in "".join(texts) + failed.text


async def test_walking_the_list_reaches_its_end_without_duplicates_or_an_empty_page(
    api: httpx.AsyncClient,
) -> None:
    await _provision(api, 6, "walk")

    for limit in (1, 2, 3, 4, 6, 7):
        pages, _ = await _walk(api, {"limit": limit})

        ids = [request_id for page in pages for request_id in page]
        assert ids == [6, 5, 4, 3, 2, 1], limit
        assert all(pages), f"an empty page was offered at limit {limit}: {pages}"
        assert len(pages) == -(-6 // limit), limit


async def test_the_limit_is_bounded(api: httpx.AsyncClient) -> None:
    too_big = await api.get("/v1/provisioning", params={"limit": 501})
    zero = await api.get("/v1/provisioning", params={"limit": 0})
    empty = await api.get("/v1/provisioning", params={"limit": 500})

    assert too_big.status_code == 400
    assert zero.status_code == 400
    assert empty.json() == {"items": [], "next_cursor": None}
