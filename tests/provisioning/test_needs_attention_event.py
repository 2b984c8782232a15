"""`provisioning.needs_attention`: sent once each time a request ends where a person must decide."""

from __future__ import annotations

import httpx

from tests.kit.polling import poll_until
from tests.provisioning.conftest import WorkerStarter, body_for, table_rows, unique_login

NEEDS_ATTENTION = (
    "SELECT payload -> 'data' FROM webhook_event "
    "WHERE event_type = 'provisioning.needs_attention' ORDER BY id"
)


async def test_a_request_needing_attention_sends_the_event_once_with_where_to_act(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, worker: WorkerStarter, database_url: str
) -> None:
    login = unique_login()
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
    request_id = int(accepted.headers["Location"].rsplit("/", 1)[1])

    await worker()
    await poll_until(
        lambda: api.get(f"/v1/provisioning/{request_id}"),
        lambda response: response.json()["state"] == "needs_attention",
        timeout=20,
    )
    # A replay of the create call answers from the stored outcome: no second event.
    await api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login})

    [(event,)] = table_rows(database_url, NEEDS_ATTENTION)
    assert event["provisioning_request_id"] == request_id
    assert event["login_name"] == login
    assert event["api_key_name"] == "backend"
    assert "login name is taken" in event["error"]
    assert event["retry_url"] == f"/v1/provisioning/{request_id}/retry"
    assert "Xq7-unguessable" not in str(event)
