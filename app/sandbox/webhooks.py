"""CTCT's partner webhooks (NOTES §2.9-2.13), sent by the sandbox and signed like CTCT signs them.

The sandbox holds an RSA key (generated on first use, one per `SandboxState`) and publishes its
public half at `GET /.well-known/jwks.json`. `POST /_sandbox/webhooks/send` applies the topic's
effect to the account (1 upgrade and 2 downgrade change the plan, 3 cancels; 4 "disabled" has no
sandbox state to change), then POSTs CTCT's notification body to the receiver (`url`, or the URI
the account's partner subscribed for the topic: `app.sandbox.partner_webhooks`), signed as a JWS
with detached, unencoded content (RFC 7515 + RFC 7797): header
`{"alg":"RS256","kid":…,"ts":<unix seconds, sandbox clock>,"b64":false,"crit":["b64"]}`, sent in
compact form `<header>..<signature>` in `X-Ctct-Signature`. Which header CTCT uses is not known
(NOTES Q10); docs/ctct.md records the assumption.

Control errors are `{"error": "<message>"}` like the rest of the control API; a receiver that
cannot be reached is a 502. The sandbox does not retry (CTCT retries every minute for an hour).
"""

from __future__ import annotations

import json
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.partners import OURS
from app.sandbox.plans import TRIAL, PlanRejected
from app.sandbox.state import SandboxState, sandbox_state
from app.sandbox.subscriptions import SentNotification

SIGNATURE_HEADER = "X-Ctct-Signature"
ALGORITHM = "RS256"
JWKS_PATH = "/.well-known/jwks.json"
RSA_KEY_BITS = 2048
SEND_TIMEOUT_SECONDS = 10.0
RESPONSE_EXCERPT_CHARS = 500

# topic_id -> event_type. Only `tier.increase` is named by CTCT (NOTES Q10); the rest follow it.
EVENT_TYPES: dict[int, str] = {
    1: "tier.increase",
    2: "tier.decrease",
    3: "account.cancelled",
    4: "account.disabled",
}
# Tier moves: an upgrade climbs this ladder, a downgrade descends it.
PLAN_LADDER = ("BRONZE", "SILVER", "GOLD")

# `ts` is CTCT's own header parameter: the registry must know it to sign with it.
REGISTRY = jws.JWSRegistry(
    header_registry={"ts": HeaderParameter("Signing time (unix seconds)", "int", required=True)},
    algorithms=[ALGORITHM],
)


def _new_key() -> RSAKey:
    kid = f"sbx-{uuid.uuid4().hex[:12]}"
    return RSAKey.generate_key(
        RSA_KEY_BITS, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}
    )


@dataclass
class WebhookSigner:
    """The sandbox's signing keys: the current one, and the previous one (still published)."""

    current: RSAKey = field(default_factory=_new_key)
    previous: RSAKey | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kid(self) -> str:
        return str(self.current.kid)

    def jwks(self) -> dict[str, Any]:
        """The published key set (public halves only)."""
        with self._lock:
            keys = [self.current] + ([self.previous] if self.previous is not None else [])
        return {"keys": [key.as_dict(private=False) for key in keys]}

    def rotate(self) -> str:
        """Sign with a new key from now on; the old one stays published. Returns the new kid."""
        with self._lock:
            self.previous, self.current = self.current, _new_key()
            return str(self.current.kid)

    def sign(self, body: bytes, ts: int) -> str:
        """The detached compact JWS over `body` (`<header>..<signature>`)."""
        with self._lock:
            key = self.current
        header = {"alg": ALGORITHM, "kid": key.kid, "ts": ts, "b64": False, "crit": ["b64"]}
        signed = jws.serialize_compact(header, body, key, registry=REGISTRY)
        # joserfc detaches a payload with non-URL-safe characters itself; JSON always has some,
        # but make the detached form explicit rather than rely on it.
        protected, _, signature = signed.split(".")
        return f"{protected}..{signature}"


# One signer per sandbox state (kept beside it so several apps over one state share the key).
_signers: weakref.WeakKeyDictionary[SandboxState, WebhookSigner] = weakref.WeakKeyDictionary()
_signers_lock = threading.Lock()


def signer_for(state: SandboxState) -> WebhookSigner:
    """The sandbox's webhook signer, created (with its key) on first use."""
    with _signers_lock:
        signer = _signers.get(state)
        if signer is None:
            signer = _signers[state] = WebhookSigner()
        return signer


def set_delivery_transport(app: Starlette, transport: httpx.AsyncBaseTransport | None) -> None:
    """Deliver this sandbox app's webhooks through `transport` (tests: an in-process receiver)."""
    app.state.webhook_transport = transport


def notification(base_url: str, encoded_account_id: str, api_key: str, topic_id: int) -> bytes:
    """CTCT's notification body for one topic, as the bytes that get signed and sent."""
    body = {
        "url": f"{base_url.rstrip('/')}/v3/partner/accounts/{encoded_account_id}/plan",
        "api_key": api_key,
        "event_type": EVENT_TYPES[topic_id],
    }
    return json.dumps(body, separators=(",", ":")).encode()


class _BadInput(Exception):
    """The control request is malformed; the message says how."""


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _next_plan(current: str, topic_id: int) -> str | None:
    if topic_id == 1:
        if current == TRIAL or current not in PLAN_LADDER:
            return PLAN_LADDER[0]
        return PLAN_LADDER[min(PLAN_LADDER.index(current) + 1, len(PLAN_LADDER) - 1)]
    if current not in PLAN_LADDER:
        return None
    return PLAN_LADDER[max(PLAN_LADDER.index(current) - 1, 0)]


def _apply_topic(state: SandboxState, account_id: str, topic_id: int, plan: str | None) -> str:
    """Make the account match the event; returns the partner API key the notice is sent for."""
    account = state.find(account_id)
    if account is None:
        raise LookupError(account_id)
    if topic_id in (1, 2):
        target = plan or _next_plan(account.plan_type, topic_id)
        if target is not None and target != account.plan_type:
            state.change_plan(account, target, None)
    elif topic_id == 3:
        state.cancel(account, None, None)
    partner = state.partners.get(account.partner or OURS) or state.partner(OURS)
    return partner.api_key


async def _parse_send(request: Request) -> tuple[str | None, int, str, str | None]:
    try:
        body = await request.json()
    except ValueError:
        raise _BadInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadInput("the body must be a JSON object")
    url, topic_id, account_id = (
        body.get("url"),
        body.get("topic_id"),
        body.get("encoded_account_id"),
    )
    plan = body.get("plan_type")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise _BadInput("url must be an http(s) URL (or absent: the partner's subscribed hook)")
    if isinstance(topic_id, bool) or topic_id not in EVENT_TYPES:
        raise _BadInput("topic_id must be 1, 2, 3 or 4")
    if not isinstance(account_id, str) or not account_id:
        raise _BadInput("encoded_account_id is required")
    if plan is not None and not isinstance(plan, str):
        raise _BadInput("plan_type must be a string")
    return url, int(topic_id), account_id, plan


async def post_notification(
    app: Starlette, state: SandboxState, url: str, body: bytes
) -> httpx.Response:
    """POST a signed notification as CTCT does (raises `httpx.HTTPError` if unreachable)."""
    signature = signer_for(state).sign(body, int(state.now().timestamp()))
    headers = {"content-type": "application/json", SIGNATURE_HEADER: signature}
    transport = getattr(app.state, "webhook_transport", None)
    async with httpx.AsyncClient(
        transport=transport, timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False
    ) as http:
        return await http.post(url, content=body, headers=headers)


def _partner_of(state: SandboxState, account_id: str) -> str:
    account = state.find(account_id)
    return (account.partner if account is not None else None) or OURS


async def _send(request: Request) -> Response:
    state = sandbox_state(request)
    try:
        url, topic_id, account_id, plan = await _parse_send(request)
        partner = _partner_of(state, account_id)
        if url is None:
            url = state.subscriptions.get(partner, topic_id)
            if url is None:
                return _error(f"the account's partner has no subscription to topic {topic_id}", 409)
        api_key = _apply_topic(state, account_id, topic_id, plan)
    except _BadInput as problem:
        return _error(str(problem))
    except LookupError:
        return _error("no such account", 404)
    except PlanRejected as rejected:
        return _error(str(rejected))
    body = notification(str(request.base_url), account_id, api_key, topic_id)
    try:
        answer = await post_notification(request.app, state, url, body)
    except httpx.HTTPError as exc:
        state.subscriptions.record(SentNotification(partner, topic_id, url, None, test=False))
        return _error(f"the receiver could not be reached: {type(exc).__name__}", 502)
    state.subscriptions.record(
        SentNotification(partner, topic_id, url, answer.status_code, test=False)
    )
    return JSONResponse(
        {
            "topic_id": topic_id,
            "event_type": EVENT_TYPES[topic_id],
            "url": url,
            "payload": json.loads(body),
            "signature_header": SIGNATURE_HEADER,
            "status_code": answer.status_code,
            "response": answer.text[:RESPONSE_EXCERPT_CHARS],
        }
    )


async def _jwks(request: Request) -> Response:
    return JSONResponse(signer_for(sandbox_state(request)).jwks())


async def _rotate(request: Request) -> Response:
    return JSONResponse({"kid": signer_for(sandbox_state(request)).rotate()}, status_code=201)


async def _subscriptions(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).subscriptions.describe())


public_routes = [Route(JWKS_PATH, _jwks, methods=["GET"])]
control_routes = [
    Route("/webhooks/send", _send, methods=["POST"]),
    Route("/webhooks/subscriptions", _subscriptions, methods=["GET"]),
    Route("/webhooks/keys/rotate", _rotate, methods=["POST"]),
]
