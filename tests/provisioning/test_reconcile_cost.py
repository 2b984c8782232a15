"""Unknown outcomes share one reading of the partner list (issue 11, defect 2): 50 requests
over a 20,000-account list cost at most 2 x ceil(20,000/50) = 800 list calls, not 50 x 400."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.kit.polling import poll_until
from tests.provisioning.conftest import (
    WorkerStarter,
    body_for,
    provisioning_settings,
    table_rows,
    unique_login,
)

LIST_PATH = "/v3/partner/accounts"
LISTED = 20_000
WAITING = 50
BOUND = 2 * math.ceil(LISTED / 50)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return provisioning_settings(
        database_url,
        provision={"reconcile_interval_seconds": 5.0, "lease_seconds": 30.0, "wait_seconds": 20.0},
        ctct={"timeout_seconds": 2.0},
    )


async def test_fifty_unknown_outcomes_over_20000_accounts_spend_at_most_800_list_calls(
    api: httpx.AsyncClient,
    sandbox_state: SandboxState,
    worker: WorkerStarter,
    database_url: str,
) -> None:
    # With the accounts the lost answers created, the list holds 20,000 when it is read.
    sandbox_state.seed_accounts(LISTED - WAITING // 2, login_prefix="listed")
    # Half the sends created the account and lost the answer; half failed with a 500.
    sandbox_state.add_fault("lost_response", "create", count=WAITING // 2)
    sandbox_state.add_fault("server_error", "create", count=WAITING // 2)
    logins = [unique_login() for _ in range(WAITING)]

    replies = await asyncio.gather(
        *(
            api.post("/v1/accounts", json=body_for(login), headers={"Idempotency-Key": login})
            for login in logins
        )
    )
    assert [reply.status_code for reply in replies] == [202] * WAITING
    assert all(reply.json()["outcome_unknown"] for reply in replies)

    def progress(_: Any = None) -> tuple[int, int]:
        done = table_rows(
            database_url, "SELECT count(*) FROM provisioning_request WHERE state = 'succeeded'"
        )[0][0]
        return done, len(sandbox_state.calls.calls(LIST_PATH, "GET"))

    async def observe() -> tuple[int, int]:
        return progress()

    await worker()
    done, spent = await poll_until(
        observe,
        lambda seen: seen[0] == WAITING or seen[1] > BOUND,
        timeout=600,
        interval=1.0,
    )

    print(f"list_calls={spent} bound={BOUND} requests={WAITING} accounts={LISTED}")
    assert spent <= BOUND, f"{spent} list calls for {WAITING} unknown outcomes"
    reads = table_rows(
        database_url,
        "SELECT state, pages_read, list_calls FROM partner_list_read WHERE pages_read > 0",
    )
    assert reads == [("completed", math.ceil(LISTED / 50), spent)]
    assert done == WAITING
    created = {account.login_name for account in sandbox_state.list_accounts("ours")}
    assert set(logins) <= created
    creates = sandbox_state.calls.calls(LIST_PATH, "POST")
    assert len(creates) == WAITING + WAITING // 2  # only the 500s were sent again
