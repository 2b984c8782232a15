"""The partner token provider: renewal ahead of expiry, shared failures, an outage it rides out."""

from __future__ import annotations

import asyncio

import pytest

from app.ctct.errors import CtctAuthError, CtctServerError, CtctUnavailable
from tests.ctct.conftest import HarnessFactory


async def test_a_token_is_renewed_ahead_of_expiry_without_any_401(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)

    h.token_clock.advance(3600 - 299)
    await h.client.get_plan(account.encoded_account_id)

    assert h.token_calls() == 2
    assert {c.status for c in h.calls("/v3/")} == {200}


async def test_a_token_is_reused_while_it_has_more_than_five_minutes_left(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)

    h.token_clock.advance(3600 - 301)
    await h.client.get_plan(account.encoded_account_id)

    assert h.token_calls() == 1


async def test_concurrent_callers_share_one_failed_token_fetch(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(read_retries=0)
    # A slow failure keeps the fetch in flight while the other callers queue behind it.
    h.sandbox.add_fault("latency", "token", delay_seconds=0.05)
    h.sandbox.add_fault("server_error", "token")

    results = await asyncio.gather(
        *(h.client.get_plan("a0aaaaaaaaaa") for _ in range(20)), return_exceptions=True
    )

    assert all(isinstance(r, CtctServerError) for r in results)
    assert h.token_calls() == 1


async def test_refused_credentials_are_an_auth_error(make_harness: HarnessFactory) -> None:
    h = make_harness(client_secret="wrong-secret")

    with pytest.raises(CtctAuthError) as refused:
        await h.tokens.token()

    assert refused.value.error_key == "invalid_client"
    assert not refused.value.should_retry


async def test_an_unreachable_token_endpoint_is_unavailable(make_harness: HarnessFactory) -> None:
    h = make_harness()
    h.sandbox.add_fault("unavailable", "token", count=1)

    with pytest.raises(CtctUnavailable) as unavailable:
        await h.tokens.token()

    assert unavailable.value.operation == "token"


async def test_an_early_renewal_that_fails_keeps_the_valid_token_in_use(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)
    h.sandbox.add_fault("unavailable", "token")

    h.token_clock.advance(3600 - 200)
    await h.client.get_plan(account.encoded_account_id)
    await h.client.get_plan(account.encoded_account_id)

    assert [c.status for c in h.calls("/oauth2/token")] == [200, 503]
    assert {c.status for c in h.calls("/v3/")} == {200}
