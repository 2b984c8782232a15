"""`GET /v1/stats`: every domain's figures in one read."""

from __future__ import annotations

import httpx

from app.sandbox.state import SandboxState
from tests.clients.support import register, seed_many
from tests.conftest import Headers, Seed


async def test_stats_count_by_status_and_show_the_quota(
    sandboxed_client: httpx.AsyncClient,
    reader: Headers,
    registrar: Headers,
    seed: Seed,
    sandbox: SandboxState,
) -> None:
    await seed_many(seed, 8)
    await register(
        sandboxed_client, registrar, sandbox.seed_account(partner="ours").encoded_account_id
    )

    stats = (await sandboxed_client.get("/v1/stats", headers=reader)).json()

    assert stats["clients_by_status"] == {
        "approved": 3,
        "billing_approved": 0,
        "other_partner": 2,
        "unaffiliated": 2,
        "unverified": 2,
    }
    assert stats["clients_total"] == 9
    assert stats["last_audit"] is None
    assert stats["provisioning_outbox"]["depth"] == 0
    assert stats["ctct_quota"]["used"] >= 1
