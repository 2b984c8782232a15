"""CTCT's partner webhooks in: sent and signed by the sandbox, verified against its JWKS.

partnergate reaches the sandbox (its JWKS, the plan endpoint) through its CTCT transport, and the
sandbox delivers webhooks to partnergate in-process; one test fetches the JWKS over loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws
from joserfc.jwk import RSAKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.ctct.webhook_signature import UNKNOWN_KID_REFETCH_SECONDS
from app.sandbox import webhooks
from app.sandbox.app import create_sandbox_app
from app.sandbox.partners import OUR_ENCODED_PARTNER_ID
from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import FAST_CTCT, build_settings

SANDBOX = "http://sandbox.test"
JWKS_URL = f"{SANDBOX}{webhooks.JWKS_PATH}"
RECEIVER = "http://partnergate.test/v1/ctct/webhooks"
HEADER = "x-ctct-signature"
PLAN_CALLS = "/v3/partner/accounts/"


def gate_settings(database_url: str, jwks_url: str = JWKS_URL) -> Settings:
    return build_settings(
        database_url,
        ctct={**FAST_CTCT, "partner_id": OUR_ENCODED_PARTNER_ID},
        webhook={"ctct_jwks_url": jwks_url, "ctct_max_age_seconds": 300},
    )


@pytest.fixture
def sandbox_app(sandbox: SandboxState) -> Starlette:
    return create_sandbox_app(sandbox)


@pytest.fixture
async def gate(database_url: str, sandbox_app: Starlette) -> AsyncIterator[FastAPI]:
    """partnergate with the sandbox as its CTCT; the sandbox delivers webhooks to it."""
    from app.main import create_app

    application = create_app(
        gate_settings(database_url), ctct_transport=httpx.ASGITransport(app=sandbox_app)
    )
    async with application.router.lifespan_context(application):
        webhooks.set_delivery_transport(sandbox_app, httpx.ASGITransport(app=application))
        yield application


@pytest.fixture
async def control(sandbox_app: Starlette, gate: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's control API."""
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX) as http:
        yield http


@pytest.fixture
async def receiver(gate: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that POSTs to partnergate directly (for forged webhooks)."""
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http


async def known_client(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: str,
    *,
    billing_status: str = "Open",
    plan_type: str = "BRONZE",
) -> None:
    async with sessionmaker() as session, session.begin():
        await clients_service.record_evidence(
            session,
            account_id,
            Evidence(
                Membership.OURS,
                VerifiedVia.PARTNER_LIST,
                "fixture",
                MirroredAttributes(billing_status=billing_status, plan_type=plan_type),
            ),
            clients_service.Actor(EventSource.AUDIT, name="fixture"),
        )


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Everything a webhook could change: clients and status events."""
    async with sessionmaker() as session:
        clients = await session.execute(
            text(
                "SELECT encoded_account_id, status, billing_status, plan_type, verified_at, "
                "updated_at, version FROM client ORDER BY id"
            )
        )
        events = await session.execute(text("SELECT count(*) FROM status_event"))
        return {"clients": [tuple(row) for row in clients], "events": events.scalar_one()}


async def mirrored(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: str
) -> tuple[str, str | None, str | None]:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT status, billing_status, plan_type FROM client "
                    "WHERE encoded_account_id = :id"
                ),
                {"id": account_id},
            )
        ).one()
        return row[0], row[1], row[2]


async def send(
    control: httpx.AsyncClient, topic_id: int, account_id: str, **extra: str
) -> dict[str, Any]:
    reply = await control.post(
        "/_sandbox/webhooks/send",
        json={"url": RECEIVER, "topic_id": topic_id, "encoded_account_id": account_id, **extra},
    )
    assert reply.status_code == 200, reply.text
    sent: dict[str, Any] = reply.json()
    return sent


def plan_reads(sandbox: SandboxState) -> int:
    return sum(1 for call in sandbox.calls.calls(PLAN_CALLS, "GET") if call.path.endswith("/plan"))


# Genuine webhooks


async def test_a_sandbox_signed_cancellation_sets_the_mirrored_billing_status_to_canceled(
    control: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open", plan_type="GOLD")
    await known_client(sessionmaker, account.encoded_account_id, plan_type="GOLD")
    before = await snapshot(sessionmaker)

    sent = await send(control, 3, account.encoded_account_id)

    assert (sent["status_code"], sent["event_type"]) == (200, "account.cancelled"), sent
    assert json.loads(sent["response"])["billing_status"] == "Canceled"
    assert await mirrored(sessionmaker, account.encoded_account_id) == (
        "approved",
        "Canceled",
        "GOLD",
    )
    assert (await control.get(f"/_sandbox/accounts/{account.encoded_account_id}")).json()[
        "billing_status"
    ] == "Canceled"
    assert (await snapshot(sessionmaker))["events"] == before["events"]
    assert plan_reads(sandbox) == 0


async def test_a_tier_upgrade_rereads_the_plan_and_mirrors_plan_type_and_billing_status(
    control: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open", plan_type="BRONZE")
    await known_client(sessionmaker, account.encoded_account_id, plan_type="BRONZE")

    sent = await send(control, 1, account.encoded_account_id)

    assert sent["status_code"] == 200, sent
    assert sent["payload"]["event_type"] == "tier.increase"
    assert sent["payload"]["url"].endswith(
        f"/v3/partner/accounts/{account.encoded_account_id}/plan"
    )
    assert await mirrored(sessionmaker, account.encoded_account_id) == (
        "approved",
        "Open",
        "SILVER",
    )
    assert plan_reads(sandbox) == 1

    await send(control, 2, account.encoded_account_id)
    assert await mirrored(sessionmaker, account.encoded_account_id) == (
        "approved",
        "Open",
        "BRONZE",
    )


async def test_a_disabled_account_is_mirrored_as_billing_status_disabled(
    control: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)

    sent = await send(control, 4, account.encoded_account_id)

    assert sent["status_code"] == 200, sent
    assert await mirrored(sessionmaker, account.encoded_account_id) == (
        "approved",
        "Disabled",
        "BRONZE",
    )


async def test_a_tier_webhook_for_an_account_no_longer_ours_demotes_it_through_the_rules(
    control: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    sandbox.move(account.encoded_account_id, "other")

    sent = await send(control, 2, account.encoded_account_id)

    assert sent["status_code"] == 200, sent
    assert (await mirrored(sessionmaker, account.encoded_account_id))[0] == "other_partner"
    async with sessionmaker() as session:
        last = (
            await session.execute(
                text("SELECT from_status, to_status, source FROM status_event ORDER BY id DESC")
            )
        ).first()
    assert last is not None
    assert tuple(last) == ("approved", "other_partner", "ctct_webhook")


async def test_a_webhook_for_an_unknown_account_is_accepted_and_recorded_nowhere(
    control: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    before = await snapshot(sessionmaker)

    sent = await send(control, 1, account.encoded_account_id)

    assert sent["status_code"] == 202, sent
    assert json.loads(sent["response"])["reason"] == "unknown_account"
    assert await snapshot(sessionmaker) == before
    assert plan_reads(sandbox) == 0


async def test_the_jwks_is_cached_and_refetched_once_when_the_sandbox_rotates_its_key(
    control: httpx.AsyncClient,
    gate: FastAPI,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    keys = gate.state.resources.ctct_keys

    for _ in range(3):
        assert (await send(control, 4, account.encoded_account_id))["status_code"] == 200
    assert keys.fetches == 1

    assert (await control.post("/_sandbox/webhooks/keys/rotate")).status_code == 201
    assert (await send(control, 3, account.encoded_account_id))["status_code"] == 200
    assert keys.fetches == 2
    assert await mirrored(sessionmaker, account.encoded_account_id) == (
        "approved",
        "Canceled",
        "BRONZE",
    )


@pytest.fixture
def loopback_sandbox(sandbox: SandboxState) -> Iterator[str]:
    with running_sandbox(sandbox) as url:
        yield url


async def test_the_jwks_is_fetched_over_real_http_from_a_loopback_sandbox(
    database_url: str,
    loopback_sandbox: str,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from app.main import create_app

    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    body = webhooks.notification(loopback_sandbox, account.encoded_account_id, "k", 3)
    signature = webhooks.signer_for(sandbox).sign(body, int(time.time()))
    application = create_app(
        gate_settings(database_url, f"{loopback_sandbox}/.well-known/jwks.json")
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate") as http:
            reply = await http.post("/v1/ctct/webhooks", content=body, headers={HEADER: signature})
    assert reply.status_code == 200, reply.text
    assert (await mirrored(sessionmaker, account.encoded_account_id))[1] == "Canceled"


# Forged, stale, malformed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], signature: bytes, payload: str = "") -> str:
    return f"{_b64(json.dumps(header).encode())}.{payload}.{_b64(signature)}"


def _genuine_header(sandbox: SandboxState, **changes: Any) -> dict[str, Any]:
    header = {
        "alg": "RS256",
        "kid": webhooks.signer_for(sandbox).kid,
        "ts": int(time.time()),
        "b64": False,
        "crit": ["b64"],
    }
    header.update(changes)
    return header


def _sign_with(key: RSAKey, header: dict[str, Any], body: bytes) -> str:
    signed = jws.serialize_compact(header, body, key, registry=webhooks.REGISTRY)
    protected, _, signature = signed.split(".")
    return f"{protected}..{signature}"


def forge(kind: str, sandbox: SandboxState, body: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of one kind of forgery, for a genuine notification `body`."""
    signer = webhooks.signer_for(sandbox)
    genuine = signer.sign(body, int(time.time()))
    if kind == "missing_header":
        return {}, body
    if kind == "tampered_body":
        return {HEADER: genuine}, body.replace(b"account.cancelled", b"account.disabled")
    if kind == "wrong_key":
        impostor = RSAKey.generate_key(2048, parameters={"kid": signer.kid})
        return {HEADER: _sign_with(impostor, _genuine_header(sandbox), body)}, body
    if kind == "unknown_kid":
        impostor = RSAKey.generate_key(2048, parameters={"kid": "not-published"})
        header = _genuine_header(sandbox, kid="not-published")
        return {HEADER: _sign_with(impostor, header, body)}, body
    if kind == "stale_ts":
        return {HEADER: signer.sign(body, int(time.time()) - 3600)}, body
    if kind == "future_ts":
        return {HEADER: signer.sign(body, int(time.time()) + 3600)}, body
    if kind == "alg_none":
        return {HEADER: _compact(_genuine_header(sandbox, alg="none"), b"x")}, body
    if kind == "alg_hs256":
        # The classic confusion: HMAC keyed with the public key's bytes.
        header = _genuine_header(sandbox, alg="HS256")
        secret = json.dumps(signer.jwks()["keys"][0]).encode()
        protected = _b64(json.dumps(header).encode())
        mac = hmac.new(secret, protected.encode() + b"." + body, hashlib.sha256).digest()
        return {HEADER: _compact(header, mac)}, body
    if kind == "encoded_payload":
        # b64 left on: the signed payload travels in the JWS, not in the body we would act on.
        header = {"alg": "RS256", "kid": signer.kid, "ts": int(time.time())}
        signed = jws.serialize_compact(header, body, signer.current, registry=webhooks.REGISTRY)
        return {HEADER: signed}, body
    if kind == "garbage":
        return {HEADER: "not-a-jws"}, body
    raise AssertionError(kind)


FORGERIES = [
    "missing_header",
    "tampered_body",
    "wrong_key",
    "unknown_kid",
    "stale_ts",
    "future_ts",
    "alg_none",
    "alg_hs256",
    "encoded_payload",
    "garbage",
]


@pytest.mark.parametrize("kind", FORGERIES)
async def test_a_forged_webhook_is_rejected_with_401_and_changes_nothing(
    kind: str,
    receiver: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    body = webhooks.notification(SANDBOX, account.encoded_account_id, "k", 3)
    headers, sent_body = forge(kind, sandbox, body)
    before = await snapshot(sessionmaker)

    reply = await receiver.post(
        "/v1/ctct/webhooks",
        content=sent_body,
        headers={"content-type": "application/json", **headers},
    )

    assert reply.status_code == 401, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"].endswith("/ctct-webhook-signature")
    assert await snapshot(sessionmaker) == before
    assert plan_reads(sandbox) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"event_type": "account.cancelled"}',
        b'{"url": "https://api.cc.email/v3/contacts/1", "event_type": "account.cancelled"}',
    ],
)
async def test_a_signed_body_that_is_not_a_notification_is_a_400_and_changes_nothing(
    body: bytes,
    receiver: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    before = await snapshot(sessionmaker)

    reply = await receiver.post(
        "/v1/ctct/webhooks",
        content=body,
        headers={HEADER: webhooks.signer_for(sandbox).sign(body, int(time.time()))},
    )

    assert reply.status_code == 400, reply.text
    assert reply.json()["type"].endswith("/ctct-webhook-malformed")
    assert await snapshot(sessionmaker) == before


async def test_forged_kids_refetch_the_jwks_at_most_once_per_cooldown(
    receiver: httpx.AsyncClient, gate: FastAPI, sandbox: SandboxState
) -> None:
    body = webhooks.notification(SANDBOX, "a0aaaaaaaaaa", "k", 3)
    keys = gate.state.resources.ctct_keys
    for _ in range(5):
        headers, _ = forge("unknown_kid", sandbox, body)
        reply = await receiver.post("/v1/ctct/webhooks", content=body, headers=headers)
        assert reply.status_code == 401
    # The first fetch fills the cache; one refetch for the unknown kid; then the cooldown.
    assert keys.fetches == 2
    assert UNKNOWN_KID_REFETCH_SECONDS >= 1


async def test_without_a_jwks_url_every_webhook_is_refused_with_503(
    database_url: str, sandbox: SandboxState
) -> None:
    from app.main import create_app

    settings = build_settings(database_url)
    application = create_app(
        settings, ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox))
    )
    body = webhooks.notification(SANDBOX, "a0aaaaaaaaaa", "k", 3)
    signature = webhooks.signer_for(sandbox).sign(body, int(time.time()))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate") as http:
            reply = await http.post("/v1/ctct/webhooks", content=body, headers={HEADER: signature})
    assert reply.status_code == 503
    assert reply.json()["type"].endswith("/ctct-webhooks-not-configured")


def _without_kid(sandbox: SandboxState, body: bytes) -> str:
    """CTCT's signature as NOTES promises it: no `kid` (only RS256, `ts`, `b64`, `crit`)."""
    header = _genuine_header(sandbox)
    del header["kid"]
    return _sign_with(webhooks.signer_for(sandbox).current, header, body)


async def test_a_jws_without_kid_is_verified_against_the_only_published_key(
    receiver: httpx.AsyncClient,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    await known_client(sessionmaker, account.encoded_account_id)
    body = webhooks.notification(SANDBOX, account.encoded_account_id, "k", 3)
    assert len(webhooks.signer_for(sandbox).jwks()["keys"]) == 1

    reply = await receiver.post(
        "/v1/ctct/webhooks",
        content=body,
        headers={"content-type": "application/json", HEADER: _without_kid(sandbox, body)},
    )

    assert reply.status_code == 200, reply.text
    assert reply.json()["billing_status"] == "Canceled"


async def test_a_jws_without_kid_signed_by_another_key_is_401(
    receiver: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    body = webhooks.notification(SANDBOX, account.encoded_account_id, "k", 3)
    header = _genuine_header(sandbox)
    del header["kid"]
    forged = _sign_with(RSAKey.generate_key(2048), header, body)

    reply = await receiver.post("/v1/ctct/webhooks", content=body, headers={HEADER: forged})

    assert reply.status_code == 401, reply.text


async def test_a_jws_without_kid_is_refused_while_several_keys_are_published(
    receiver: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    signer = webhooks.signer_for(sandbox)
    signer.rotate()
    account = sandbox.seed_account(partner="ours", billing_status="Open")
    body = webhooks.notification(SANDBOX, account.encoded_account_id, "k", 3)

    reply = await receiver.post(
        "/v1/ctct/webhooks", content=body, headers={HEADER: _without_kid(sandbox, body)}
    )

    assert reply.status_code == 401, reply.text
    assert "kid" in reply.json()["detail"]


class _UnreadBody:
    """A streamed body that records whether anything pulled it."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.pulled += 1
        yield b'{"url": "x", "event_type": "tier.increase"}'


@pytest.mark.parametrize("kind", ["missing_header", "stale_ts", "garbage", "alg_none"])
async def test_an_unsigned_or_stale_webhook_is_refused_before_its_body_is_read(
    kind: str, receiver: httpx.AsyncClient, sandbox: SandboxState
) -> None:
    headers, _ = forge(kind, sandbox, b"{}")
    body = _UnreadBody()

    reply = await receiver.post("/v1/ctct/webhooks", content=body, headers=headers)

    assert reply.status_code == 401, reply.text
    assert body.pulled == 0
