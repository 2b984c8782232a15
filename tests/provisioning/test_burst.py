"""A burst of creates larger than the API can send within its wait (issue 13, provisioning at
the limit): what the API cannot send goes to the workers at once, without an attempt of its
own. Claimed, refused by the budget and handed back, each such create cost the API three
transactions; under 200 at once its event loop fell behind and the few creates it did send
went out hundreds of milliseconds after their slots, which every later slot inherited."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.kit.engine_events import engine_events
from tests.kit.polling import poll_until
from tests.provisioning.conftest import (
    WorkerStarter,
    body_for,
    provisioning_settings,
    table_rows,
    unique_login,
)

BURST = 40
CREATE_PATH = "/v3/partner/accounts"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # CTCT's real rate: the API can send about four creates within its one-second wait.
    return provisioning_settings(
        database_url, provision={"wait_seconds": 1.0}, ctct={"rate_per_second": 4.0}
    )


async def test_creates_the_api_cannot_send_in_time_go_to_the_workers_without_an_attempt(
    app: FastAPI,
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    worker: WorkerStarter,
    database_url: str,
) -> None:
    logins = [unique_login("burst") for _ in range(BURST)]

    with engine_events(app.state.resources.engine, "commit") as commits:
        replies = await asyncio.gather(
            *(
                api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login})
                for login in logins
            )
        )

    answered = [reply.status_code for reply in replies]
    assert set(answered) <= {201, 202}, [reply.text for reply in replies if reply.is_error]
    handed_over = [reply.json() for reply in replies if reply.status_code == 202]
    assert len(handed_over) >= BURST - 8
    # Never sent, never claimed: a first attempt for the workers, due now.
    assert {(r["state"], r["attempts"], r["last_error"]) for r in handed_over} == {
        ("pending", 0, None)
    }
    # One transaction each to store it (the API's own few attempts add two each).
    assert len(commits) <= BURST + 2 * (BURST - len(handed_over)) + 4, len(commits)

    await worker()

    async def succeeded() -> int:
        rows = table_rows(
            database_url, "SELECT count(*) FROM provisioning_request WHERE state = 'succeeded'"
        )
        return int(rows[0][0])

    await poll_until(succeeded, lambda done: done == BURST, timeout=120, interval=0.5)
    created = [
        call for call in sandbox_state.calls.calls(CREATE_PATH, "POST") if call.status == 201
    ]
    assert sorted(account.login_name for account in sandbox_state.list_accounts()) == sorted(logins)
    assert len(created) == BURST
