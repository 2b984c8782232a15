"""Issue 12's findings on the clients endpoints: every input typed and bounded at the edge."""

from __future__ import annotations

import json

import httpx
import pytest

from app.clients.evidence import Membership
from tests.clients.support import assert_problem
from tests.conftest import Headers, Seed

BEYOND_BIGINT = 2**63


@pytest.mark.parametrize("request_id", [BEYOND_BIGINT, 10**40, 0, -5])
async def test_a_transfer_request_id_outside_bigint_is_404(
    client: httpx.AsyncClient, decider: Headers, request_id: int
) -> None:
    response = await client.patch(
        f"/v1/transfer-requests/{request_id}",
        json={"state": "submitted", "note": "sent"},
        headers=decider,
    )

    assert_problem(response, 404, "request_id")


async def test_a_nul_in_the_search_is_400_naming_q(
    client: httpx.AsyncClient, reader: Headers
) -> None:
    response = await client.get("/v1/clients", params={"q": "acme\x00"}, headers=reader)

    assert_problem(response, 400, "q")


async def test_a_nul_in_a_csv_export_search_is_400_too(
    client: httpx.AsyncClient, reader: Headers
) -> None:
    response = await client.get(
        "/v1/clients", params={"q": "\x00"}, headers={**reader, "Accept": "text/csv"}
    )

    assert_problem(response, 400, "q")


@pytest.mark.parametrize(
    "note",
    [pytest.param("because\x00", id="nul"), pytest.param("because \ud800", id="lone-surrogate")],
)
async def test_a_note_that_is_not_storable_text_is_400_naming_it(
    client: httpx.AsyncClient, decider: Headers, seed: Seed, note: str
) -> None:
    await seed("acct-free", Membership.NO_PARTNER)
    raw = json.dumps({"note": note}).encode()
    headers = {**decider, "content-type": "application/json"}

    approval = await client.post(
        "/v1/clients/acct-free/billing-approval", content=raw, headers=headers
    )
    transfer = await client.post(
        "/v1/clients/acct-free/transfer-requests", content=raw, headers=headers
    )

    assert_problem(approval, 400, "note")
    assert_problem(transfer, 400, "note")
    detail = await client.get("/v1/clients/acct-free", headers=decider)
    assert detail.json()["status"] == "unaffiliated"
    assert detail.json()["transfer_requests"] == []


async def test_a_version_beyond_int32_is_400_naming_it(
    client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-free", Membership.NO_PARTNER)

    response = await client.post(
        "/v1/clients/acct-free/billing-approval",
        json={"note": "ok", "version": 2**31},
        headers=decider,
    )

    assert_problem(response, 400, "version")


async def test_a_malformed_account_id_in_a_path_is_400_naming_it(
    client: httpx.AsyncClient, reader: Headers
) -> None:
    response = await client.get("/v1/clients/bad%00id", headers=reader)

    assert_problem(response, 400, "encoded_account_id")
