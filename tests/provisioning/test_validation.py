"""Our create endpoint rejects and accepts exactly what CTCT (the sandbox) does, storing nothing
for a rejected body. The cases are the rule table of the shared rules' own tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import TEST_PARTNER
from tests.provisioning.conftest import PASSWORD, table_rows
from tests.sandbox.test_provision_rules import ACCEPTED, REJECTED, _body

CTCT_CREATE = "/v3/partner/accounts"


async def _ctct_status(sandbox: httpx.AsyncClient, body: dict[str, Any]) -> int:
    token = await sandbox.post(
        "/oauth2/token",
        params={"grant_type": "client_credentials", "scope": "v3api/general.partner"},
        auth=(TEST_PARTNER.client_id, TEST_PARTNER.client_secret),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    response = await sandbox.post(
        CTCT_CREATE,
        json=body,
        headers={
            "x-api-key": TEST_PARTNER.api_key,
            "Authorization": f"Bearer {token.json()['access_token']}",
        },
    )
    return response.status_code


async def test_every_rejected_case_is_400_with_its_field_and_nothing_is_stored(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, database_url: str
) -> None:
    for number, case in enumerate(REJECTED):
        changes, field = case.values
        body = _body(changes)  # type: ignore[arg-type]
        response = await api.post(
            "/v1/accounts", json=body, headers={"Idempotency-Key": f"rejected-{number}"}
        )

        assert response.status_code == 400, (case.id, response.text)
        problem = response.json()
        assert problem["type"].endswith("/validation-error"), case.id
        assert field in [error["field"] for error in problem["errors"]], (case.id, problem)
        assert PASSWORD not in response.text
        assert await _ctct_status(sandbox, body) == 400, case.id

    assert table_rows(database_url, "SELECT count(*) FROM provisioning_request") == [(0,)]
    assert table_rows(database_url, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]
    assert table_rows(database_url, "SELECT count(*) FROM client") == [(0,)]


async def test_every_accepted_case_is_provisioned(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    for number, case in enumerate(ACCEPTED):
        (changes,) = case.values
        await sandbox.post("/_sandbox/reset")
        response = await api.post(
            "/v1/accounts",
            json=_body(changes),  # type: ignore[arg-type]
            headers={"Idempotency-Key": f"accepted-{number}"},
        )

        assert response.status_code == 201, (case.id, response.text)


async def test_every_field_error_is_reported_at_once(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/accounts",
        json={"contact_email": "nope", "country_code": "XX", "login_name": "a b"},
        headers={"Idempotency-Key": "many"},
    )

    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"contact_email", "country_code", "login_name", "state_code", "password"} <= fields


async def test_a_body_that_is_not_an_object_or_not_json_is_400(api: httpx.AsyncClient) -> None:
    array = await api.post("/v1/accounts", json=[], headers={"Idempotency-Key": "arr"})
    broken = await api.post(
        "/v1/accounts",
        content=b"{not json",
        headers={"Idempotency-Key": "broken", "content-type": "application/json"},
    )

    assert array.status_code == 400
    assert array.json()["errors"] == [{"field": "body", "message": "must be a JSON object"}]
    assert broken.status_code == 400
