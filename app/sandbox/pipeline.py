"""One pipeline for every call to CTCT's HTTP surface.

Authenticate, count against the API key's limits, apply injected faults, run the operation, log
the call. Token calls are not counted (NOTES Q3). Operations and authenticators plug into it as
`Handler`s and `Authenticate`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.sandbox import errors
from app.sandbox.accounts import Account
from app.sandbox.faults import Fault, FaultKind, Operation
from app.sandbox.limits import Verdict
from app.sandbox.partners import Partner
from app.sandbox.state import SandboxState, sandbox_state

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class Trace:
    """What the call log keeps about one request beyond its answer."""

    arrived_at: datetime
    login_name: str | None = None
    left_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the API key counted for limits, and the partner or account acted for."""

    api_key: str | None
    partner: Partner | None = None
    account: Account | None = None


Authenticate = Callable[[SandboxState, Request], Awaitable["Caller | Response"]]
Handler = Callable[[Request, SandboxState, Caller], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return JSONResponse(body, status_code=status, headers=headers)


def bad_request(key: str, *messages: str) -> Response:
    """A 400 with CTCT's error list."""
    return json_response(errors.error_list(key, *messages), 400)


def media_type(request: Request) -> str:
    """The request's media type, without parameters, lower-case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def serve(
    request: Request, operation: Operation, authenticate: Authenticate, handler: Handler
) -> Response:
    """Authenticate, count against the API key's limits, apply faults, run `handler`, log."""
    state = sandbox_state(request)
    state.settle()
    trace = Trace(arrived_at=state.now())
    if operation is Operation.CREATE:
        trace.login_name = await _login_name(request)
    caller = await authenticate(state, request)
    if isinstance(caller, Response):
        return _logged(request, state, caller, request.headers.get("x-api-key"), trace)
    if caller.api_key is not None:
        verdict = state.admit(caller.api_key)
        if verdict is not Verdict.ADMITTED:
            return _logged(request, state, _rate_limited(verdict), caller.api_key, trace)
    plan = state.take_faults(operation)
    if plan.delay_seconds > 0:
        await _delay(request, state, plan.delay_seconds, trace)
    fault = plan.fault
    if fault is None:
        response = await handler(request, state, caller)
        return _logged(request, state, response, caller.api_key, trace)
    if fault.kind is FaultKind.LOST_RESPONSE:
        response = await handler(request, state, caller)
        try:
            await _hang_until_client_leaves(request, state)
        finally:  # the client left, or took this task with it (in-process transports)
            trace.left_at = state.now()
            _logged(request, state, response, caller.api_key, trace, fault)
        timeout = errors.error_list(errors.TIMEOUT_ERROR_KEY, "The response was lost.")
        return json_response(timeout, 504)
    if fault.kind is FaultKind.UNAVAILABLE and operation is Operation.CREATE:
        await _defer_create(request, state, caller, fault)
    return _logged(request, state, _fault_response(fault.kind), caller.api_key, trace, fault)


def _logged(  # noqa: PLR0917 - one call-log line from everything serve knows
    request: Request,
    state: SandboxState,
    response: Response,
    api_key: str | None,
    trace: Trace,
    fault: Fault | None = None,
) -> Response:
    state.record_call(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        status=response.status_code,
        api_key=api_key,
        fault=fault.kind.value if fault is not None else None,
        arrived_at=trace.arrived_at,
        left_at=trace.left_at,
        login_name=trace.login_name,
    )
    return response


async def _login_name(request: Request) -> str | None:
    """The login name a create body asks for, if it can be read (the body stays cached)."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    login = body.get("login_name") if isinstance(body, dict) else None
    return login if isinstance(login, str) else None


async def _delay(request: Request, state: SandboxState, seconds: float, trace: Trace) -> None:
    """A slow CTCT: answer after `seconds`, noting when the client gave up meanwhile (CTCT goes
    on with the request all the same)."""
    await request.body()  # read (and cached for the handler) before listening for a departure

    async def departure() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        trace.left_at = state.now()

    watcher = asyncio.create_task(departure())
    try:
        await asyncio.sleep(seconds)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _rate_limited(verdict: Verdict) -> Response:
    # CTCT documents these two bodies as single objects, and sends no Retry-After.
    if verdict is Verdict.QUOTA_EXCEEDED:
        key, message = errors.QUOTA_EXCEEDED_ERROR_KEY, errors.QUOTA_EXCEEDED_MESSAGE
    else:
        key, message = errors.THROTTLED_ERROR_KEY, errors.THROTTLED_MESSAGE
    return json_response(errors.error_object(key, message), 429)


_STATUS_FAULTS: dict[FaultKind, tuple[int, str, str]] = {
    FaultKind.BAD_REQUEST: (400, errors.VALIDATION_ERROR_KEY, "The request is not valid."),
    FaultKind.FORBIDDEN: (403, errors.FORBIDDEN_ERROR_KEY, "Forbidden request."),
    FaultKind.NOT_FOUND: (404, errors.NOT_FOUND_ERROR_KEY, errors.NOT_FOUND_MESSAGE),
    FaultKind.METHOD_NOT_ALLOWED: (405, errors.METHOD_NOT_ALLOWED_ERROR_KEY, "Not allowed."),
    FaultKind.UNSUPPORTED_MEDIA_TYPE: (
        415,
        errors.UNSUPPORTED_MEDIA_TYPE_ERROR_KEY,
        "Unsupported Media Type",
    ),
}


def _fault_response(kind: FaultKind) -> Response:
    if kind is FaultKind.UNAUTHORIZED:
        body = errors.error_object(errors.UNAUTHORIZED_ERROR_KEY, errors.UNAUTHORIZED_MESSAGE)
        return json_response(body, 401)
    if kind in _STATUS_FAULTS:
        status, key, message = _STATUS_FAULTS[kind]
        return json_response(errors.error_list(key, message), status)
    if kind is FaultKind.THROTTLE:
        return _rate_limited(Verdict.THROTTLED)
    if kind is FaultKind.QUOTA:
        return _rate_limited(Verdict.QUOTA_EXCEEDED)
    if kind is FaultKind.UNAVAILABLE:
        unavailable = errors.error_list(errors.UNAVAILABLE_ERROR_KEY, errors.UNAVAILABLE_MESSAGE)
        return json_response(unavailable, 503)
    return json_response(
        errors.error_list(errors.SERVER_ERROR_KEY, errors.SERVER_ERROR_MESSAGE), 500
    )


async def _defer_create(
    request: Request, state: SandboxState, caller: Caller, fault: Fault
) -> None:
    if media_type(request) != JSON_MEDIA_TYPE or caller.partner is None:
        return
    try:
        body = json.loads(await request.body())
    except ValueError:
        return
    if isinstance(body, dict):
        state.defer_provision(caller.partner.key, body, fault)


async def _hang_until_client_leaves(request: Request, state: SandboxState) -> None:
    """Never answer: wait for the client to disconnect or give up (which cancels us)."""
    state.hanging_requests += 1
    try:
        async with asyncio.timeout(state.lost_response_max_seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
    finally:
        state.hanging_requests -= 1


def endpoint_for(
    operation: Operation, authenticate: Authenticate, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving one operation through the pipeline."""

    async def endpoint(request: Request) -> Response:
        return await serve(request, operation, authenticate, handler)

    return endpoint
