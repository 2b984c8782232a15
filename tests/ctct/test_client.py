"""The CTCT client against the sandbox: tokens, error mapping, retries, paging, user calls."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
import respx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.client import build_ctct_client
from app.ctct.errors import (
    CtctAuthError,
    CtctBudgetExhausted,
    CtctConflict,
    CtctNotFound,
    CtctNotOurs,
    CtctRateLimited,
    CtctServerError,
    CtctUnavailable,
    CtctValidationError,
)
from app.ctct.priorities import Priority
from app.sandbox.app import create_sandbox_app
from app.sandbox.partners import OTHER, OTHER_PARTNER
from app.sandbox.state import SandboxState
from tests.ctct.conftest import HarnessFactory, ctct_settings, provision_body

TOKEN_LIFETIME = 3600.0


# Tokens


async def test_fifty_concurrent_calls_across_a_token_expiry_fetch_one_new_token(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)
    assert h.token_calls() == 1

    h.sandbox.advance_clock(TOKEN_LIFETIME)
    h.token_clock.advance(TOKEN_LIFETIME)
    plans = await asyncio.gather(
        *(h.client.get_plan(account.encoded_account_id) for _ in range(50))
    )

    assert len(plans) == 50
    assert h.token_calls() == 2
    assert [c for c in h.calls("/v3/") if c.status == 401] == []


async def test_fifty_concurrent_401s_after_a_revocation_cause_one_renewal(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)

    h.sandbox.invalidate_partner_tokens()
    plans = await asyncio.gather(
        *(h.client.get_plan(account.encoded_account_id) for _ in range(50))
    )

    assert all(plan.billing_status == "Trial" for plan in plans)
    assert h.token_calls() == 2


async def test_a_revoked_token_is_renewed_once_and_the_call_succeeds(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    await h.client.get_plan(account.encoded_account_id)

    h.sandbox.invalidate_partner_tokens()
    plan = await h.client.get_plan(account.encoded_account_id)

    assert plan.plan_type == "TRIAL"
    assert [c.status for c in h.calls("/v3/partner")] == [200, 401, 200]
    assert h.token_calls() == 2


async def test_a_permanent_401_fails_after_exactly_one_renewal(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(api_key="a-key-ctct-does-not-know")
    account = h.sandbox.seed_account()

    with pytest.raises(CtctAuthError) as refused:
        await h.client.get_plan(account.encoded_account_id)

    assert refused.value.status == 401
    assert [c.status for c in h.calls("/v3/partner")] == [401, 401]
    assert h.token_calls() == 2


async def test_a_403_is_an_auth_error_without_renewal(make_harness: HarnessFactory) -> None:
    h = make_harness(api_key=OTHER_PARTNER.api_key)
    account = h.sandbox.seed_account()

    with pytest.raises(CtctAuthError) as refused:
        await h.client.get_plan(account.encoded_account_id)

    assert refused.value.status == 403
    assert h.token_calls() == 1


async def test_wrong_partner_credentials_fail_at_the_token_endpoint(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(client_secret="not-the-secret")

    with pytest.raises(CtctAuthError) as refused:
        await h.client.get_plan("a0aaaaaaaaaa")

    assert refused.value.error_key == "invalid_client"
    assert "not-the-secret" not in str(refused.value)
    assert h.calls("/v3/") == []


# Status mapping (sandbox faults)


async def test_an_invalid_create_body_is_a_validation_error_listing_every_field(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()

    with pytest.raises(CtctValidationError) as rejected:
        await h.client.create_account(provision_body(login_name="x", contact_email="nope"))

    messages = [e.error_message for e in rejected.value.errors]
    assert any("login_name" in m for m in messages)
    assert any("contact_email" in m for m in messages)
    assert "Tr0ub4dor" not in str(rejected.value)


async def test_another_partners_account_is_not_ours(make_harness: HarnessFactory) -> None:
    h = make_harness()
    theirs = h.sandbox.seed_account(partner=OTHER)

    with pytest.raises(CtctNotOurs) as not_ours:
        await h.client.cancel(theirs.encoded_account_id)
    with pytest.raises(CtctNotOurs):
        await h.client.get_plan(theirs.encoded_account_id)

    assert not_ours.value.encoded_account_id == theirs.encoded_account_id
    assert not_ours.value.status == 400


async def test_an_unknown_account_is_not_found(make_harness: HarnessFactory) -> None:
    h = make_harness()

    with pytest.raises(CtctNotFound):
        await h.client.get_plan("a0zzzzzzzzzz")

    assert len(h.calls("/v3/partner")) == 1


async def test_a_taken_login_name_is_a_conflict(make_harness: HarnessFactory) -> None:
    h = make_harness()
    h.sandbox.seed_account(login_name="hank_fresh_fruit")

    with pytest.raises(CtctConflict):
        await h.client.create_account(provision_body("hank_fresh_fruit"))


async def test_throttling_is_retryable_and_penalizes_every_process(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    h.sandbox.add_fault("throttle", "create", count=1)

    with pytest.raises(CtctRateLimited) as limited:
        await h.client.create_account(provision_body())

    assert (limited.value.kind, limited.value.should_retry) == ("throttled", True)
    assert (await h.budget.snapshot()).penalty_ends_at is not None


async def test_quota_exceeded_stops_every_caller_until_the_next_utc_day(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    h.sandbox.add_fault("quota", "plan", count=1)

    with pytest.raises(CtctRateLimited) as limited:
        await h.client.get_plan(account.encoded_account_id)
    with pytest.raises(CtctBudgetExhausted):
        await h.client.get_plan(account.encoded_account_id)

    assert limited.value.kind == "quota_exceeded"
    assert len(h.calls("/v3/partner")) == 1


async def test_a_500_is_a_server_error_and_a_write_is_not_retried(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    h.sandbox.add_fault("server_error", "plan", count=1)

    with pytest.raises(CtctServerError) as failed:
        await h.client.set_plan(account.encoded_account_id, "GOLD", billing_day_of_month=1)

    assert failed.value.status == 500
    assert len(h.calls("/v3/partner", "PUT")) == 1


async def test_a_503_on_create_is_raised_and_sent_once(make_harness: HarnessFactory) -> None:
    h = make_harness()
    h.sandbox.add_fault("unavailable", "create", count=1)

    with pytest.raises(CtctUnavailable) as unavailable:
        await h.client.create_account(provision_body())

    assert unavailable.value.status == 503
    assert unavailable.value.request_may_have_been_processed
    assert len(h.calls("/v3/partner/accounts", "POST")) == 1


async def test_a_lost_create_response_becomes_unavailable_not_a_hang(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(timeout_seconds=0.3)
    h.sandbox.add_fault("lost_response", "create", count=1)

    with pytest.raises(CtctUnavailable) as lost:
        await h.client.create_account(provision_body())

    assert lost.value.reason == "timeout"
    assert lost.value.request_may_have_been_processed
    assert h.sandbox.find_by_login("hank_fresh_fruit") is not None
    assert len(h.calls("/v3/partner/accounts", "POST")) == 1


async def test_a_slow_answer_times_out_as_unavailable(make_harness: HarnessFactory) -> None:
    h = make_harness(timeout_seconds=0.2, read_retries=0)
    account = h.sandbox.seed_account()
    h.sandbox.add_fault("latency", "plan", count=1, delay_seconds=5.0)

    with pytest.raises(CtctUnavailable) as slow:
        await h.client.get_plan(account.encoded_account_id)

    assert slow.value.reason == "timeout"


def _respx_router(h_settings_token_url: str) -> respx.MockRouter:
    router = respx.MockRouter(assert_all_called=False)
    router.post(h_settings_token_url).respond(
        200, json={"access_token": "jwt", "expires_in": 3600, "token_type": "Bearer"}
    )
    return router


async def test_connection_refused_is_unavailable_and_known_not_processed(
    make_harness: HarnessFactory,
) -> None:
    router = _respx_router("http://sandbox.invalid/oauth2/token")
    router.post("http://sandbox.invalid/v3/partner/accounts").mock(
        side_effect=httpx.ConnectError("connection refused")
    )
    h = make_harness(transport=httpx.MockTransport(router.async_handler))

    with pytest.raises(CtctUnavailable) as refused:
        await h.client.create_account(provision_body())

    assert refused.value.reason == "connect"
    assert not refused.value.request_may_have_been_processed


async def test_a_reset_connection_is_unavailable_and_maybe_processed(
    make_harness: HarnessFactory,
) -> None:
    router = _respx_router("http://sandbox.invalid/oauth2/token")
    route = router.get(url__startswith="http://sandbox.invalid/v3/partner/accounts/").mock(
        side_effect=httpx.ReadError("connection reset by peer")
    )
    h = make_harness(transport=httpx.MockTransport(router.async_handler), read_retries=2)

    with pytest.raises(CtctUnavailable) as reset:
        await h.client.get_plan("a0aaaaaaaaaa")

    assert reset.value.reason == "connection_lost"
    assert reset.value.request_may_have_been_processed
    assert route.call_count == 3


# Retries


async def test_a_read_retries_on_503_then_succeeds(make_harness: HarnessFactory) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    h.sandbox.add_fault("unavailable", "plan", count=2)

    plan = await h.client.get_plan(account.encoded_account_id)

    assert plan.billing_status == "Trial"
    assert [c.status for c in h.calls("/v3/partner")] == [503, 503, 200]
    assert len(h.retry_sleeps) == 2


async def test_a_read_gives_up_after_its_bounded_retries(make_harness: HarnessFactory) -> None:
    h = make_harness(read_retries=2)
    account = h.sandbox.seed_account()
    h.sandbox.add_fault("server_error", "plan")

    with pytest.raises(CtctServerError):
        await h.client.get_plan(account.encoded_account_id)

    assert len(h.calls("/v3/partner")) == 3


async def test_a_throttled_read_backs_off_through_the_budget_and_succeeds(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    h.sandbox.seed_accounts(3)
    h.sandbox.add_fault("throttle", "list", count=1)

    accounts = [a async for a in h.client.iter_accounts()]

    assert len(accounts) == 3
    assert [c.status for c in h.calls("/v3/partner")] == [429, 200]
    assert (await h.budget.snapshot()).used == 2


async def test_create_is_never_retried_even_when_the_error_is_retryable(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    h.sandbox.add_fault("server_error", "create", count=1)

    with pytest.raises(CtctServerError):
        await h.client.create_account(provision_body())

    assert len(h.calls("/v3/partner/accounts", "POST")) == 1
    assert h.retry_sleeps == []


# Operations


async def test_create_returns_the_new_account_id(make_harness: HarnessFactory) -> None:
    h = make_harness()

    result = await h.client.create_account(provision_body())

    created = h.sandbox.find(result.encoded_account_id)
    assert created is not None
    assert created.login_name == "hank_fresh_fruit"
    assert result.provision_uuid


async def test_listing_1234_accounts_yields_each_exactly_once(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    ours = {a.encoded_account_id for a in h.sandbox.seed_accounts(1234)}
    h.sandbox.seed_accounts(20, partner=OTHER, login_prefix="theirs")
    pages: list[int] = []

    async for page in h.client.iter_account_pages():
        pages.append(len(page.accounts))
    listed = [a.encoded_account_id async for a in h.client.iter_accounts()]

    assert len(listed) == 1234
    assert set(listed) == ours
    assert len(pages) == math.ceil(1234 / 50)
    assert sum(pages) == 1234


async def test_plan_changes_and_cancellation_round_trip(make_harness: HarnessFactory) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()

    upgraded = await h.client.set_plan(account.encoded_account_id, "GOLD", billing_day_of_month=3)
    cancelled = await h.client.cancel(account.encoded_account_id, reason_id=2)
    after_cancel = await h.client.get_plan(account.encoded_account_id)
    reactivated = await h.client.set_plan(account.encoded_account_id, "SILVER")

    assert (upgraded.plan_type, upgraded.billing_status) == ("GOLD", "Open")
    assert upgraded.billing_day_of_month == 3
    assert cancelled.reason_id == 2
    assert after_cancel.billing_status == "Canceled"
    assert reactivated.billing_status == "Open"


async def test_account_summary_reads_the_partner_of_a_users_account(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    ours = h.sandbox.seed_account()
    unaffiliated = h.sandbox.seed_account(partner="none")
    our_token = h.sandbox.mint_user_token(ours.encoded_account_id)
    loose_token = h.sandbox.mint_user_token(unaffiliated.encoded_account_id)

    mine = await h.client.account_summary(our_token)
    loose = await h.client.account_summary(loose_token)

    assert mine.encoded_account_id == ours.encoded_account_id
    assert mine.encoded_partner_id == "sbxpartner0001"
    assert loose.encoded_partner_id is None
    assert h.token_calls() == 0


async def test_a_refused_user_token_is_an_auth_error_without_partner_renewal(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()

    with pytest.raises(CtctAuthError):
        await h.client.account_summary("not-a-user-token")

    assert len(h.calls("/v3/account/summary")) == 1
    assert h.token_calls() == 0


async def test_background_listing_cannot_spend_the_interactive_reserve(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(daily_quota=3, interactive_reserve=2)
    account = h.sandbox.seed_account()

    await h.client.list_accounts_page()
    with pytest.raises(CtctBudgetExhausted):
        await h.client.list_accounts_page(priority=Priority.BACKGROUND)
    await h.client.get_plan(account.encoded_account_id)

    assert len(h.calls("/v3/partner")) == 2


async def test_no_secret_or_token_reaches_the_logs(make_harness: HarnessFactory) -> None:
    h = make_harness()
    account = h.sandbox.seed_account()
    user_token = h.sandbox.mint_user_token(account.encoded_account_id)
    h.sandbox.add_fault("unavailable", "plan", count=1)

    with structlog.testing.capture_logs() as logs:
        await h.client.create_account(provision_body())
        await h.client.get_plan(account.encoded_account_id)
        await h.client.account_summary(user_token)
        h.sandbox.invalidate_partner_tokens()
        await h.client.get_plan(account.encoded_account_id)

    text = repr(logs)
    for secret in (
        h.settings.client_secret.get_secret_value(),
        h.settings.api_key.get_secret_value(),
        user_token,
        "Tr0ub4dor",
    ):
        assert secret not in text
    events = {entry["event"] for entry in logs}
    assert {
        "ctct.token.fetched",
        "ctct.create_account.succeeded",
        "ctct.get_plan.retrying",
        "ctct.get_plan.token_refused",
        "ctct.account_summary.succeeded",
    } <= events


async def test_a_next_link_to_another_host_is_refused_before_credentials_leave(
    make_harness: HarnessFactory,
) -> None:
    router = _respx_router("http://sandbox.invalid/oauth2/token")
    router.get("http://sandbox.invalid/v3/partner/accounts").respond(
        200,
        json={
            "site_owner_list": [{"encoded_account_id": "a0aaaaaaaaaa"}],
            "_links": {"next": {"href": "https://elsewhere.example/v3/partner/accounts?o=1"}},
        },
    )
    elsewhere = router.get(url__startswith="https://elsewhere.example/")
    h = make_harness(transport=httpx.MockTransport(router.async_handler))

    with pytest.raises(CtctServerError):
        _ = [a async for a in h.client.iter_accounts()]

    assert not elsewhere.called


async def test_the_request_hook_sees_every_attempt_including_retries_and_the_token_fetch(
    engine: AsyncEngine, sandbox: SandboxState
) -> None:
    sandbox.seed_accounts(120)
    sandbox.add_fault("unavailable", "list", count=1)
    sent: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        sent.append(request.url.path)

    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    async with build_ctct_client(
        ctct_settings(), engine=engine, transport=transport, on_request=on_request
    ) as client:
        pages = [page async for page in client.iter_account_pages()]

    assert len(pages) == 3
    assert sent == ["/oauth2/token"] + ["/v3/partner/accounts"] * 4
    assert [c.status for c in sandbox.calls.calls("/v3/partner/accounts")] == [503, 200, 200, 200]


@pytest.mark.parametrize("token", ["é-token", "two words", "", "tok\x00en"])
async def test_a_user_token_that_is_no_bearer_token_is_refused_before_the_budget(
    make_harness: HarnessFactory, token: str
) -> None:
    h = make_harness()

    with pytest.raises(CtctAuthError):
        await h.client.account_summary(token)

    assert h.calls() == []
    assert (await h.budget.snapshot()).used == 0
