"""Issue 12's findings on the provisioning endpoints: every input typed and bounded at the edge.

Each of these answered 500 before: an id beyond bigint, a NUL or a lone surrogate in the create
body (Postgres refuses U+0000 in jsonb; a surrogate has no UTF-8 form), a naive effective_date.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.sandbox.state import SandboxState
from tests.ctct.test_contract import RecordingTransport
from tests.provisioning.conftest import body_for, table_rows, unique_login

BEYOND_BIGINT = 2**63


@pytest.fixture
def sandbox_transport(sandbox_state: SandboxState) -> RecordingTransport:
    """The sandbox, with every request partnergate sends to it recorded."""
    from app.sandbox.app import create_sandbox_app

    return RecordingTransport(httpx.ASGITransport(app=create_sandbox_app(sandbox_state)))


def _fields(response: httpx.Response) -> set[str]:
    return {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/provisioning/{BEYOND_BIGINT}",
        "/v1/provisioning/0",
        "/v1/provisioning/-1",
        f"/v1/provisioning/{10**30}",
    ],
)
async def test_a_request_id_outside_bigint_is_404(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _fields(response) == {"request_id"}


async def test_a_retry_of_an_id_beyond_bigint_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(f"/v1/provisioning/{BEYOND_BIGINT}/retry")

    assert response.status_code == 404, response.text
    assert _fields(response) == {"request_id"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"organization_name": "Fresh\x00Fruit"}, "organization_name", id="nul"),
        pytest.param({"first_name": "Ha\ud800nk"}, "first_name", id="lone-surrogate"),
        pytest.param({"password": "Xq7-unguess\x00able!"}, "password", id="nul-in-password"),
        pytest.param({"login_name": "\udfff" * 8}, "login_name", id="surrogate-login"),
    ],
)
async def test_a_string_that_is_not_storable_text_is_400_naming_it(
    api: httpx.AsyncClient, database_url: str, changes: dict[str, Any], field: str
) -> None:
    raw = json.dumps({**body_for(unique_login()), **changes}).encode()

    response = await api.post(
        "/v1/accounts",
        content=raw,
        headers={"Idempotency-Key": "text", "content-type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert _fields(response) == {field}
    assert "Xq7" not in response.text
    assert table_rows(database_url, "SELECT count(*) FROM provisioning_request") == [(0,)]


async def test_a_field_name_with_a_nul_is_400(api: httpx.AsyncClient) -> None:
    body = {**body_for(unique_login()), "evil\x00name": "x"}

    response = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "key-nul"})

    assert response.status_code == 400, response.text


async def test_null_is_refused_for_a_required_field(api: httpx.AsyncClient) -> None:
    body = {**body_for(unique_login()), "login_name": None, "country_code": None}

    response = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "nulls"})

    assert response.status_code == 400
    errors = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert errors["login_name"] == "must not be null"
    assert errors["country_code"] == "must not be null"


async def test_null_for_an_optional_field_is_never_sent_to_ctct(
    api: httpx.AsyncClient, sandbox_transport: RecordingTransport, database_url: str
) -> None:
    body = body_for(unique_login(), website=None, first_name=None, gdpr_opt_out=None)

    response = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "opt"})

    assert response.status_code == 201, response.text
    sent = [
        json.loads(exchange.body)
        for exchange in sandbox_transport.exchanges
        if exchange.method == "POST" and exchange.url.path == "/v3/partner/accounts"
    ]
    assert len(sent) == 1
    assert None not in sent[0].values()
    assert not {"website", "first_name", "gdpr_opt_out"} & set(sent[0])
    stored = table_rows(database_url, "SELECT payload::text FROM provisioning_request")
    assert "null" not in stored[0][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"effective_date": "2030-01-31T00:00:00"}, "effective_date", id="naive"),
        pytest.param({"effective_date": "9999-12-31T23:59:59-14:00"}, "effective_date", id="max"),
        pytest.param({"effective_date": "0001-01-01T00:00:00+14:00"}, "effective_date", id="min"),
        pytest.param({"reason_id": 2**31}, "reason_id", id="reason-beyond-int32"),
        pytest.param({"reason_id": "\x00"}, "reason_id", id="reason-nul"),
    ],
)
async def test_a_cancel_with_an_unusable_field_is_400_naming_it(
    api: httpx.AsyncClient, sandbox_transport: RecordingTransport, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/accounts/a07e1lxqqqo0/cancel", json=body)

    assert response.status_code == 400, response.text
    assert _fields(response) == {field}
    assert sandbox_transport.exchanges == []


async def test_a_plan_group_beyond_int32_is_400_naming_it(
    api: httpx.AsyncClient, sandbox_transport: RecordingTransport
) -> None:
    response = await api.put(
        "/v1/accounts/a07e1lxqqqo0/plan", json={"plan_type": "GOLD", "plan_group_id": 2**31}
    )

    assert response.status_code == 400, response.text
    assert _fields(response) == {"plan_group_id"}
    assert sandbox_transport.exchanges == []


async def test_an_idempotency_key_that_is_not_printable_ascii_is_400(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/v1/accounts",
        json=body_for(unique_login()),
        headers={"Idempotency-Key": "clé".encode()},
    )

    assert response.status_code == 400
    assert response.json()["type"].endswith("/idempotency-key-invalid")
