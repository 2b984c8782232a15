"""`POST /v1/accounts` in one process: validation, idempotency, CTCT's answers."""

from __future__ import annotations

import httpx

from tests.provisioning.conftest import (
    PASSWORD,
    body_for,
    create_calls,
    sandbox_accounts,
    table_rows,
    unique_login,
)


async def test_provision_creates_the_account_and_approves_the_client(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, database_url: str
) -> None:
    login = unique_login()
    response = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": "k1"}
    )

    assert response.status_code == 201, response.text
    client = response.json()
    assert client["status"] == "approved"
    assert client["verified_via"] == "provisioning"
    assert client["login_name"] == login
    assert len(await sandbox_accounts(sandbox, login)) == 1
    events = table_rows(database_url, "SELECT source, actor, to_status FROM status_event")
    assert events == [("provisioning", "backend", "approved")]
    request = await api.get(f"/v1/provisioning/{client['provisioning_request_id']}")
    assert request.json()["state"] == "succeeded"
    assert request.json()["retryable"] is False
    assert PASSWORD not in request.text
    ciphertexts = table_rows(database_url, "SELECT password_ciphertext FROM provisioning_request")
    assert ciphertexts == [(None,)]


async def test_same_key_same_body_replays_the_first_response(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    body = body_for(unique_login())
    first = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "same"})
    again = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "same"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await create_calls(sandbox)) == 1


async def test_same_key_other_body_is_422(api: httpx.AsyncClient) -> None:
    login = unique_login()
    first = await api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": "x"})
    other = await api.post(
        "/v1/accounts",
        json=body_for(login, password="Another-secret-99"),
        headers={"Idempotency-Key": "x"},
    )

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_the_idempotency_key_is_required(api: httpx.AsyncClient, database_url: str) -> None:
    body = body_for(unique_login())
    missing = await api.post("/v1/accounts", json=body)
    blank = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "  "})
    too_long = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": "k" * 256})

    for response in (missing, blank, too_long):
        assert response.status_code == 400
        assert response.json()["type"].endswith("/idempotency-key-invalid")
    assert table_rows(database_url, "SELECT count(*) FROM provisioning_request") == [(0,)]


async def test_a_taken_login_name_on_the_first_attempt_is_409(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, database_url: str
) -> None:
    login = unique_login()
    seeded = await sandbox.post("/_sandbox/accounts", json={"login_name": login})
    assert seeded.status_code == 201, seeded.text

    response = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": "t"}
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("/login-name-taken")
    states = table_rows(database_url, "SELECT state, password_ciphertext FROM provisioning_request")
    assert states == [("failed", None)]
    replay = await api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": "t"})
    assert replay.status_code == 409
    assert replay.json() == response.json()


async def test_provisioning_needs_the_scope(client: httpx.AsyncClient, api_key: object) -> None:
    response = await client.post("/v1/accounts", json=body_for(unique_login()))
    assert response.status_code == 401


async def test_metrics_show_the_outbox_depth(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    await sandbox.post("/_sandbox/faults", json={"kind": "unavailable", "operation": "create"})
    accepted = await api.post(
        "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": "m"}
    )
    assert accepted.status_code == 202

    metrics = await api.get("/metrics")

    assert "partnergate_outbox_depth 1.0" in metrics.text
    assert PASSWORD not in metrics.text
