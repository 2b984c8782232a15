"""Plan and cancellation passthrough; the client's mirrored plan and billing status follow."""

from __future__ import annotations

import httpx

from tests.provisioning.conftest import body_for, table_rows, unique_login


async def _provisioned(api: httpx.AsyncClient) -> str:
    login = unique_login()
    response = await api.post(
        "/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login}
    )
    assert response.status_code == 201, response.text
    account_id: str = response.json()["encoded_account_id"]
    return account_id


def _mirrored(database_url: str, account_id: str) -> list[tuple[object, ...]]:
    return table_rows(
        database_url,
        f"SELECT plan_type, billing_status, status FROM client "
        f"WHERE encoded_account_id = '{account_id}'",
    )


async def test_plan_change_cancel_and_reactivation_are_mirrored(
    api: httpx.AsyncClient, database_url: str
) -> None:
    account_id = await _provisioned(api)

    plan = await api.get(f"/v1/accounts/{account_id}/plan")
    assert plan.status_code == 200, plan.text
    assert (plan.json()["plan_type"], plan.json()["billing_status"]) == ("TRIAL", "Trial")

    gold = await api.put(f"/v1/accounts/{account_id}/plan", json={"plan_type": "GOLD"})
    assert gold.status_code == 200, gold.text
    assert _mirrored(database_url, account_id) == [("GOLD", "Open", "approved")]

    canceled = await api.post(f"/v1/accounts/{account_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert _mirrored(database_url, account_id) == [("GOLD", "Canceled", "approved")]

    reactivated = await api.put(f"/v1/accounts/{account_id}/plan", json={"plan_type": "SILVER"})
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["billing_status"] == "Open"
    assert _mirrored(database_url, account_id) == [("SILVER", "Open", "approved")]


async def test_ctct_refusals_become_problems(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    account_id = await _provisioned(api)
    other = await sandbox.post(
        "/_sandbox/accounts", json={"login_name": unique_login(), "partner": "other"}
    )
    other_id = other.json()["encoded_account_id"]

    unknown = await api.get("/v1/accounts/a0nosuchthing/plan")
    not_ours = await api.post(f"/v1/accounts/{other_id}/cancel")
    back_to_trial = await api.put(f"/v1/accounts/{account_id}/plan", json={"plan_type": "GOLD"})
    back_to_trial = await api.put(f"/v1/accounts/{account_id}/plan", json={"plan_type": "TRIAL"})
    await sandbox.post("/_sandbox/faults", json={"kind": "unavailable", "operation": "plan"})
    unavailable = await api.get(f"/v1/accounts/{account_id}/plan")
    malformed = await api.put(f"/v1/accounts/{account_id}/plan", json={"plan_type": ""})

    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/account-not-found")
    assert not_ours.status_code in (404, 409), not_ours.text
    assert back_to_trial.status_code == 400, back_to_trial.text
    assert back_to_trial.json()["type"].endswith("/ctct-rejected")
    assert unavailable.status_code == 503
    assert unavailable.json()["type"].endswith("/upstream-unavailable")
    assert malformed.status_code == 400


async def test_a_malformed_account_id_is_a_400_problem_and_ctct_is_not_called(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    calls_before = len((await sandbox.get("/_sandbox/calls")).json()["calls"])

    response = await api.get("/v1/accounts/not%20an%20id/plan")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "account_id"
    assert len((await sandbox.get("/_sandbox/calls")).json()["calls"]) == calls_before
