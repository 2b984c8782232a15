"""A client password CTCT echoes back never reaches our columns, answers or webhooks, whatever
its whitespace and wherever the message is cut (defect 8 of issue 11)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.ctct.errors import MAX_MESSAGE_CHARS
from app.settings import Settings
from tests.provisioning.conftest import body_for, unique_login
from tests.provisioning.test_outcomes import password_hits

SPACED_PASSWORD = "Tab\tand  two  spaces-9x"
LONG_PASSWORD = "Cut-At-The-Limit-Zq81-unguessable"


class EchoingCtct(httpx.AsyncBaseTransport):
    """The sandbox, except that creates get a 400 whose message echoes the password: after
    `padding` characters, so that the message limit falls inside the password."""

    def __init__(self, sandbox: httpx.AsyncBaseTransport, padding: int) -> None:
        self.sandbox = sandbox
        self.padding = padding

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v3/partner/accounts":
            password = json.loads(request.content)["password"]
            message = "x" * self.padding + f"password {password} is in a breach corpus"
            return httpx.Response(
                400, json=[{"error_key": "partner.account.validation", "error_message": message}]
            )
        return await self.sandbox.handle_async_request(request)


@pytest.fixture(params=[0, MAX_MESSAGE_CHARS - 20])
async def echoing_api(
    request: pytest.FixtureRequest,
    settings: Settings,
    sandbox_transport: httpx.ASGITransport,
    provisioner_key: str,
) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    application: FastAPI = create_app(
        settings, ctct_transport=EchoingCtct(sandbox_transport, padding=request.param)
    )
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://partnergate.test",
            headers={"Authorization": f"Bearer {provisioner_key}"},
        ) as http,
    ):
        yield http


def _fragments(password: str) -> list[str]:
    """What must not survive: the password, its whitespace collapsed, any 8-character piece."""
    collapsed = " ".join(password.split())
    pieces = {password[i : i + 8] for i in range(len(password) - 7)}
    return [password, collapsed, *sorted(pieces)]


@pytest.mark.parametrize("password", [SPACED_PASSWORD, LONG_PASSWORD])
async def test_an_echoed_password_is_redacted_before_the_message_is_cut_or_collapsed(
    echoing_api: httpx.AsyncClient, database_url: str, password: str
) -> None:
    login = unique_login()
    response = await echoing_api.post(
        "/v1/accounts",
        json=body_for(login, password=password),
        headers={"Idempotency-Key": login},
    )
    assert response.status_code == 400, response.text
    stored = await echoing_api.get(f"/v1/provisioning/{response.json()['provisioning_request_id']}")
    assert stored.json()["state"] == "failed"

    for fragment in _fragments(password):
        assert fragment not in response.text
        assert fragment not in stored.text
        # every text/json column, webhook_event's provisioning.finished payload included
        assert password_hits(database_url, fragment) == []


def test_redact_matches_the_secret_whatever_its_whitespace_became() -> None:
    from app.ctct.errors import error_from_response, redact

    assert redact("a Tab and two spaces-9x b", (SPACED_PASSWORD,)) == "a [redacted] b"
    assert redact("Tab\tand  two  spaces-9x", (SPACED_PASSWORD,)) == "[redacted]"
    error = error_from_response(
        400,
        ('[{"error_message": "' + "y" * 295 + LONG_PASSWORD + '"}]').encode(),
        operation="create_account",
        secrets=(LONG_PASSWORD,),
    )
    assert LONG_PASSWORD[:5] not in str(error)
