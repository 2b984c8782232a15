"""CTCT's `/v3/partner/webhooks/subscriptions` (NOTES §2.9-2.13), served like every partner call.

Per partner, one callback URI per topic (1 tier upgrade, 2 tier downgrade, 3 cancelled,
4 disabled): `GET` lists them, `PUT …/{topic_id}` with `{"hook_uri"}` subscribes or moves the
URI (200 `{topic_id, hook_uri}`), `GET …/{topic_id}` reads one, `DELETE` removes it (204), and
`POST …/{topic_id}/tests` sends a signed sample notification to the URI (201 with the topic).
A topic that is not 1-4, or not subscribed, is a 404; a malformed id or body is a 400. After a
subscription, `/_sandbox/webhooks/send` without a `url` notifies the subscribed URI.

The sandbox accepts `http://` URIs (tests and `make run` listen on loopback); whether CTCT
insists on https is not documented.
"""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox import errors
from app.sandbox.authentication import partner_caller
from app.sandbox.faults import Operation
from app.sandbox.pipeline import (
    JSON_MEDIA_TYPE,
    Caller,
    bad_request,
    json_response,
    media_type,
    serve,
)
from app.sandbox.state import SandboxState
from app.sandbox.subscriptions import TOPICS, SentNotification
from app.sandbox.webhooks import notification, post_notification

PATH = "/v3/partner/webhooks/subscriptions"
VALIDATION_ERROR_KEY = "partner.webhooks.validation"
NOT_FOUND_ERROR_KEY = "partner.webhooks.not_found"
HOOK_URI_MAX = 2000
# The account the contract's own notification example names; test notifications use it.
SAMPLE_ACCOUNT_ID = "a07e1my9tbw0"


def _topic(topic_id: int, hook_uri: str) -> dict[str, object]:
    name, description = TOPICS[topic_id]
    return {
        "topic_id": topic_id,
        "hook_uri": hook_uri,
        "topic_name": name,
        "topic_description": description,
    }


def _not_found(message: str) -> Response:
    return json_response(errors.error_list(NOT_FOUND_ERROR_KEY, message), 404)


def _topic_id(request: Request) -> int | Response:
    raw = request.path_params["topic_id"]
    if not raw.isdigit():
        return bad_request(VALIDATION_ERROR_KEY, "topic_id: must be an integer")
    topic_id = int(raw)
    if topic_id not in TOPICS:
        return _not_found(f"There is no webhook topic {topic_id}.")
    return topic_id


def _partner(caller: Caller) -> str:
    assert caller.partner is not None
    return caller.partner.key


def _subscribed(
    request: Request, state: SandboxState, caller: Caller
) -> tuple[int, str] | Response:
    topic_id = _topic_id(request)
    if isinstance(topic_id, Response):
        return topic_id
    hook_uri = state.subscriptions.get(_partner(caller), topic_id)
    if hook_uri is None:
        return _not_found(f"There is no subscription to topic {topic_id}.")
    return topic_id, hook_uri


async def _list(request: Request, state: SandboxState, caller: Caller) -> Response:
    return json_response(
        [_topic(topic_id, uri) for topic_id, uri in state.subscriptions.of(_partner(caller))]
    )


async def _get(request: Request, state: SandboxState, caller: Caller) -> Response:
    found = _subscribed(request, state, caller)
    if isinstance(found, Response):
        return found
    return json_response(_topic(*found))


async def _hook_uri(request: Request) -> str | Response:
    if media_type(request) != JSON_MEDIA_TYPE:
        message = "Content-Type must be application/json"
        return json_response(
            errors.error_list(errors.UNSUPPORTED_MEDIA_TYPE_ERROR_KEY, message), 415
        )
    try:
        body = await request.json()
    except ValueError:
        return bad_request(errors.MALFORMED_JSON_ERROR_KEY, "The request body is not valid JSON.")
    hook_uri = body.get("hook_uri") if isinstance(body, dict) else None
    if (
        not isinstance(hook_uri, str)
        or not hook_uri.startswith(("http://", "https://"))
        or len(hook_uri) > HOOK_URI_MAX
    ):
        return bad_request(VALIDATION_ERROR_KEY, "hook_uri: must be an http(s) URI")
    return hook_uri


async def _put(request: Request, state: SandboxState, caller: Caller) -> Response:
    topic_id = _topic_id(request)
    if isinstance(topic_id, Response):
        return topic_id
    hook_uri = await _hook_uri(request)
    if isinstance(hook_uri, Response):
        return hook_uri
    state.subscriptions.put(_partner(caller), topic_id, hook_uri)
    return json_response({"topic_id": topic_id, "hook_uri": hook_uri})


async def _delete(request: Request, state: SandboxState, caller: Caller) -> Response:
    found = _subscribed(request, state, caller)
    if isinstance(found, Response):
        return found
    state.subscriptions.remove(_partner(caller), found[0])
    return Response(status_code=204)


async def _test(request: Request, state: SandboxState, caller: Caller) -> Response:
    found = _subscribed(request, state, caller)
    if isinstance(found, Response):
        return found
    topic_id, hook_uri = found
    assert caller.partner is not None
    body = notification(str(request.base_url), SAMPLE_ACCOUNT_ID, caller.partner.api_key, topic_id)
    try:
        answer = await post_notification(request.app, state, hook_uri, body)
        status: int | None = answer.status_code
    except httpx.HTTPError:  # CTCT answers 201 and retries on its own; the miss is recorded
        status = None
    state.subscriptions.record(
        SentNotification(_partner(caller), topic_id, hook_uri, status, test=True)
    )
    return json_response(_topic(topic_id, hook_uri), 201)


async def _collection(request: Request) -> Response:
    return await serve(request, Operation.WEBHOOKS, partner_caller, _list)


async def _subscription(request: Request) -> Response:
    handler = {"GET": _get, "PUT": _put, "DELETE": _delete}[request.method]
    return await serve(request, Operation.WEBHOOKS, partner_caller, handler)


async def _tests(request: Request) -> Response:
    return await serve(request, Operation.WEBHOOKS, partner_caller, _test)


routes = [
    Route(PATH, _collection, methods=["GET"]),
    Route(f"{PATH}/{{topic_id}}", _subscription, methods=["GET", "PUT", "DELETE"]),
    Route(f"{PATH}/{{topic_id}}/tests", _tests, methods=["POST"]),
]
