"""What happens after CTCT's other answers: retries, lost responses, reconciliation, re-queues,
and the password, which never shows up anywhere but in its ciphertext."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from app.ctct.budget_terms import key_fingerprint
from app.db import libpq_url
from app.settings import Settings
from tests.kit.polling import poll_until
from tests.provisioning.conftest import (
    PASSWORD,
    WorkerStarter,
    body_for,
    create_calls,
    sandbox_accounts,
    table_rows,
    unique_login,
)


def password_hits(database_url: str, needle: str = PASSWORD) -> list[str]:
    """Every `table.column` (text, varchar, json, jsonb, arrays) whose value contains `needle`."""
    hits = []
    with psycopg.connect(libpq_url(database_url)) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND (data_type IN "
            "('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY'))"
        ).fetchall()
        for table, column in columns:
            query = f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s'
            row = conn.execute(query, (f"%{needle}%",)).fetchone()  # type: ignore[call-overload]
            if row and row[0]:
                hits.append(f"{table}.{column}")
    return hits


async def state_of(api: httpx.AsyncClient, request_id: int) -> dict[str, Any]:
    response = await api.get(f"/v1/provisioning/{request_id}")
    body: dict[str, Any] = response.json()
    return body


def location_id(response: httpx.Response) -> int:
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def test_provision_503_is_retried_by_the_worker_until_it_succeeds(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    worker: WorkerStarter,
    database_url: str,
) -> None:
    await sandbox.post(
        "/_sandbox/faults", json={"kind": "unavailable", "operation": "create", "count": 3}
    )
    login = unique_login()
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["state"] == "pending"
    assert PASSWORD not in accepted.text
    assert password_hits(database_url) == []
    ciphertexts = table_rows(database_url, "SELECT password_ciphertext FROM provisioning_request")
    assert ciphertexts[0][0] is not None

    await worker()
    final = await poll_until(
        lambda: state_of(api, location_id(accepted)),
        lambda state: state["state"] == "succeeded",
        timeout=20,
    )

    assert final["attempts"] >= 2
    assert len(await sandbox_accounts(sandbox, login)) == 1
    assert password_hits(database_url) == []
    assert table_rows(database_url, "SELECT password_ciphertext FROM provisioning_request") == [
        (None,)
    ]


async def test_a_lost_response_is_reconciled_not_sent_again(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, worker: WorkerStarter, database_url: str
) -> None:
    await sandbox.post(
        "/_sandbox/faults", json={"kind": "lost_response", "operation": "create", "count": 1}
    )
    login = unique_login()
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["outcome_unknown"] is True

    await worker()
    final = await poll_until(
        lambda: state_of(api, location_id(accepted)),
        lambda state: state["state"] == "succeeded",
        timeout=20,
    )

    assert final["result"]["reconciled"] is True
    assert len(await create_calls(sandbox)) == 1
    assert len(await sandbox_accounts(sandbox, login)) == 1
    replay = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert replay.status_code == 201
    assert replay.json()["status"] == "approved"
    assert password_hits(database_url) == []


async def test_409_after_an_unknown_outcome_needs_attention_and_a_retry_settles_it(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, worker: WorkerStarter, database_url: str
) -> None:
    login = unique_login()
    # The first send fails in a way that may have created it; then another partner's account
    # turns out to hold the login name.
    await sandbox.post(
        "/_sandbox/faults", json={"kind": "server_error", "operation": "create", "count": 1}
    )
    seeded = await sandbox.post(
        "/_sandbox/accounts", json={"login_name": login, "partner": "other"}
    )
    assert seeded.status_code == 201, seeded.text
    accepted = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert accepted.status_code == 202, accepted.text

    await worker()
    stuck = await poll_until(
        lambda: state_of(api, location_id(accepted)),
        lambda state: state["state"] == "needs_attention",
        timeout=20,
    )
    assert "login name is taken" in stuck["last_error"]
    assert stuck["retryable"] is True
    replay = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert replay.status_code == 409
    assert replay.json()["type"].endswith("/provisioning-needs-attention")

    # A person finds the account was ours after all (moved under our partner) and retries.
    account_id = seeded.json()["encoded_account_id"]
    moved = await sandbox.put(f"/_sandbox/accounts/{account_id}/partner", json={"partner": "ours"})
    assert moved.status_code == 200, moved.text
    with capture_logs() as logs:
        retried = await api.post(f"/v1/provisioning/{location_id(accepted)}/retry")
    assert retried.status_code == 202, retried.text
    requeued = [line for line in logs if line["event"] == "provisioning.request.requeued"]
    assert [line["by"] for line in requeued] == ["backend"]  # the key that asked, in the log
    final = await poll_until(
        lambda: state_of(api, location_id(accepted)),
        lambda state: state["state"] == "succeeded",
        timeout=20,
    )

    assert final["result"] == {
        "encoded_account_id": account_id,
        "provision_uuid": None,
        "reconciled": True,
    }
    assert final["retryable"] is False
    again = await api.post(f"/v1/provisioning/{location_id(accepted)}/retry")
    assert again.status_code == 409
    assert password_hits(database_url) == []


async def test_a_retry_without_the_password_explains_why_not(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    login = unique_login()
    await sandbox.post("/_sandbox/accounts", json={"login_name": login})
    taken = await api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": "t"})
    assert taken.status_code == 409

    retry = await api.post(f"/v1/provisioning/{taken.json()['provisioning_request_id']}/retry")

    assert retry.status_code == 409
    assert "erased" in retry.json()["detail"]


class RejectingCtct(httpx.AsyncBaseTransport):
    """The sandbox, except that creates get CTCT's 400 echoing the password back."""

    def __init__(self, sandbox: httpx.AsyncBaseTransport) -> None:
        self.sandbox = sandbox

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v3/partner/accounts":
            message = f"password: {PASSWORD} was found in a breach corpus"
            return httpx.Response(
                400, json=[{"error_key": "partner.account.validation", "error_message": message}]
            )
        return await self.sandbox.handle_async_request(request)


@pytest.fixture
async def rejecting_api(
    settings: Settings, sandbox_transport: httpx.ASGITransport, provisioner_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    application: FastAPI = create_app(settings, ctct_transport=RejectingCtct(sandbox_transport))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://partnergate.test",
            headers={"Authorization": f"Bearer {provisioner_key}"},
        ) as http,
    ):
        yield http


async def test_ctct_400_fails_the_request_with_its_errors_and_no_password(
    rejecting_api: httpx.AsyncClient, database_url: str
) -> None:
    response = await rejecting_api.post(
        "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": "r"}
    )

    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("/ctct-validation-error")
    assert problem["errors"] == [
        {"field": "password", "message": "[redacted] was found in a breach corpus"}
    ]
    assert PASSWORD not in response.text
    request = await rejecting_api.get(f"/v1/provisioning/{problem['provisioning_request_id']}")
    assert request.json()["state"] == "failed"
    assert PASSWORD not in request.text
    assert password_hits(database_url) == []


async def test_an_unknown_request_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/provisioning/999")
    assert response.status_code == 404
    assert response.json()["type"].endswith("/provisioning-request-not-found")


async def test_a_create_the_budget_could_not_send_in_time_stays_a_first_attempt(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    worker: WorkerStarter,
    settings: Settings,
    database_url: str,
) -> None:
    """Nothing reached CTCT, so the workers send it as a first attempt, before retries (it came
    back as attempt 2 at retry priority, and bench/provision.py's workers stood back behind the
    API's own creates)."""
    fingerprint = key_fingerprint(settings.ctct.api_key.get_secret_value())
    table_rows(  # a 429 penalty holds every call back beyond the API's wait
        database_url,
        "INSERT INTO ctct_budget (key_fingerprint, quota_day, penalty_ends_at) "
        f"VALUES ('{fingerprint}', current_date, now() + interval '1 hour') RETURNING 1",
    )
    accepted = await api.post(
        "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": "budget"}
    )
    assert accepted.status_code == 202, accepted.text
    refused = (await api.get(accepted.headers["Location"])).json()
    assert (refused["state"], refused["attempts"]) == ("pending", 0)
    assert "CTCT rate limit" in refused["last_error"]
    assert await create_calls(sandbox) == []

    table_rows(database_url, "UPDATE ctct_budget SET penalty_ends_at = NULL RETURNING 1")
    await worker()
    final = await poll_until(
        lambda: api.get(accepted.headers["Location"]),
        lambda response: response.json()["state"] == "succeeded",
        timeout=30,
        interval=0.2,
    )

    assert final.json()["attempts"] == 1
    assert len(await create_calls(sandbox)) == 1
