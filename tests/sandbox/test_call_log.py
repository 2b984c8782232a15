"""The call log says when each request arrived, when its client gave up, and which login a
create asked for: what `bench/chaos.py` needs to prove two sends of one request never overlap."""

from __future__ import annotations

import httpx
import pytest

from app.sandbox.calls import CallRecord
from app.sandbox.partners import OUR_PARTNER
from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from tests.kit.polling import poll_until
from tests.sandbox.test_sandbox_api import ACCOUNTS, create_body, partner_token


@pytest.mark.parametrize(
    ("fault", "changes"),
    [("lost_response", {}), ("latency", {"delay_seconds": 1.5})],
)
async def test_a_create_whose_client_gives_up_is_logged_with_arrival_departure_and_login(
    fault: str, changes: dict[str, float]
) -> None:
    state = SandboxState(rate_per_second=1_000)
    with running_sandbox(state) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await partner_token(client)
            headers = {"x-api-key": OUR_PARTNER.api_key, "authorization": token}
            state.add_fault(fault, "create", count=1, **changes)

            with pytest.raises(httpx.ReadTimeout):
                await client.post(
                    ACCOUNTS, json=create_body("gone_early"), headers=headers, timeout=0.3
                )

            async def logged() -> list[CallRecord]:
                return list(state.calls.calls(ACCOUNTS, "POST"))

            [call] = await poll_until(logged, lambda calls: len(calls) == 1, timeout=10)

    assert call.login_name == "gone_early"
    assert call.arrived_at is not None
    assert call.left_at is not None
    gone_after = (call.left_at - call.arrived_at).total_seconds()
    assert 0.2 < gone_after < 1.4
    # CTCT went on with it: the account exists although the client never heard.
    assert state.find_by_login("gone_early") is not None


async def test_an_answered_call_has_no_departure() -> None:
    state = SandboxState(rate_per_second=1_000)
    with running_sandbox(state) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await partner_token(client)
            headers = {"x-api-key": OUR_PARTNER.api_key, "authorization": token}
            created = await client.post(ACCOUNTS, json=create_body("answered"), headers=headers)

    assert created.status_code == 201
    [call] = state.calls.calls(ACCOUNTS, "POST")
    assert (call.login_name, call.left_at, call.status) == ("answered", None, 201)
    assert call.arrived_at is not None
    assert call.arrived_at <= call.at
