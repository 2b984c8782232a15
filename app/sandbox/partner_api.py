"""CTCT's HTTP surface: the token endpoint, `/v3/partner/*` and `/v3/account/summary`.

Every call goes through one pipeline: authenticate, count against the API key's limits, apply
injected faults, run the operation, log the call. Token calls are not counted (NOTES Q3).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.ctct.provision_rules import validate_provision
from app.sandbox import errors
from app.sandbox.accounts import ACCOUNT_TYPES, Account, AccountType, LoginNameTaken
from app.sandbox.faults import Fault, FaultKind, Operation
from app.sandbox.limits import Verdict
from app.sandbox.paging import decode_offset, encode_offset, page_limit
from app.sandbox.partners import Partner
from app.sandbox.plans import (
    CANCEL_REASONS,
    PlanRejected,
    billing_status,
    cancellation,
    plan_tiers,
)
from app.sandbox.state import SandboxState
from app.sandbox.timefmt import iso, parse_iso
from app.sandbox.tokens import PARTNER_SCOPE, TOKEN_LIFETIME_SECONDS

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the API key counted for limits, and the partner or account acted for."""

    api_key: str | None
    partner: Partner | None = None
    account: Account | None = None


Authenticate = Callable[[SandboxState, Request], Awaitable["Caller | Response"]]
Handler = Callable[[Request, SandboxState, Caller], Awaitable[Response]]


def sandbox_state(request: Request) -> SandboxState:
    """The state of the sandbox app serving `request`."""
    return cast(SandboxState, request.app.state.sandbox)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized() -> Response:
    body = errors.error_object(errors.UNAUTHORIZED_ERROR_KEY, errors.UNAUTHORIZED_MESSAGE)
    return _json(body, 401)


def _bad_request(key: str, *messages: str) -> Response:
    return _json(errors.error_list(key, *messages), 400)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _serve(
    request: Request, operation: Operation, authenticate: Authenticate, handler: Handler
) -> Response:
    state = sandbox_state(request)
    state.settle()
    caller = await authenticate(state, request)
    if isinstance(caller, Response):
        return _logged(request, state, caller, request.headers.get("x-api-key"))
    if caller.api_key is not None:
        verdict = state.admit(caller.api_key)
        if verdict is not Verdict.ADMITTED:
            return _logged(request, state, _rate_limited(verdict), caller.api_key)
    plan = state.take_faults(operation)
    if plan.delay_seconds > 0:
        await asyncio.sleep(plan.delay_seconds)
    fault = plan.fault
    if fault is None:
        return _logged(request, state, await handler(request, state, caller), caller.api_key)
    if fault.kind is FaultKind.LOST_RESPONSE:
        response = await handler(request, state, caller)
        _logged(request, state, response, caller.api_key, fault)
        await _hang_until_client_leaves(request, state)
        timeout = errors.error_list(errors.TIMEOUT_ERROR_KEY, "The response was lost.")
        return _json(timeout, 504)
    if fault.kind is FaultKind.UNAVAILABLE and operation is Operation.CREATE:
        await _defer_create(request, state, caller, fault)
    return _logged(request, state, _fault_response(fault.kind), caller.api_key, fault)


def _logged(
    request: Request,
    state: SandboxState,
    response: Response,
    api_key: str | None,
    fault: Fault | None = None,
) -> Response:
    state.record_call(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        status=response.status_code,
        api_key=api_key,
        fault=fault.kind.value if fault is not None else None,
    )
    return response


def _rate_limited(verdict: Verdict) -> Response:
    # CTCT documents these two bodies as single objects, and sends no Retry-After.
    if verdict is Verdict.QUOTA_EXCEEDED:
        key, message = errors.QUOTA_EXCEEDED_ERROR_KEY, errors.QUOTA_EXCEEDED_MESSAGE
    else:
        key, message = errors.THROTTLED_ERROR_KEY, errors.THROTTLED_MESSAGE
    return _json(errors.error_object(key, message), 429)


def _fault_response(kind: FaultKind) -> Response:
    if kind is FaultKind.THROTTLE:
        return _rate_limited(Verdict.THROTTLED)
    if kind is FaultKind.QUOTA:
        return _rate_limited(Verdict.QUOTA_EXCEEDED)
    if kind is FaultKind.UNAVAILABLE:
        unavailable = errors.error_list(errors.UNAVAILABLE_ERROR_KEY, errors.UNAVAILABLE_MESSAGE)
        return _json(unavailable, 503)
    return _json(errors.error_list(errors.SERVER_ERROR_KEY, errors.SERVER_ERROR_MESSAGE), 500)


async def _defer_create(
    request: Request, state: SandboxState, caller: Caller, fault: Fault
) -> None:
    if _media_type(request) != JSON_MEDIA_TYPE or caller.partner is None:
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


# Authentication


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    value = header.strip()
    # CTCT's docs never show the prefix; accept the JWT with or without it (NOTES Q2).
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


async def _partner_caller(state: SandboxState, request: Request) -> Caller | Response:
    api_key = request.headers.get("x-api-key")
    key_partner = state.partner_for_api_key(api_key) if api_key else None
    if api_key is None or key_partner is None:
        return _unauthorized()
    token = _bearer(request.headers.get("authorization"))
    token_partner = state.partner_for_token(token) if token else None
    if token_partner is None:
        return _unauthorized()
    if token_partner.key != key_partner.key:
        body = errors.error_object(errors.FORBIDDEN_ERROR_KEY, errors.FORBIDDEN_MESSAGE)
        return _json(body, 403)
    return Caller(api_key, key_partner)


async def _user_caller(state: SandboxState, request: Request) -> Caller | Response:
    token = _bearer(request.headers.get("authorization"))
    grant = state.user_grant(token) if token else None
    account = state.find(grant.encoded_account_id) if grant else None
    if grant is None or account is None:
        return _unauthorized()
    return Caller(grant.api_key, account=account)


def _oauth_error(error: str, status: int = 400) -> Response:
    return _json({"error": error}, status)


async def _token_client(state: SandboxState, request: Request) -> Caller | Response:
    if _media_type(request) != FORM_MEDIA_TYPE:
        return _oauth_error(errors.UNSUPPORTED_MEDIA_TYPE, 415)
    credentials = _basic_credentials(request.headers.get("authorization"))
    partner = state.partner_for_client(*credentials) if credentials else None
    if partner is None:
        return _oauth_error(errors.INVALID_CLIENT)
    # Token calls are not counted against the API key's limits (NOTES Q3, settled).
    return Caller(None, partner)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    return (client_id, secret) if separator else None


# Operations


async def _issue_token(request: Request, state: SandboxState, caller: Caller) -> Response:
    params = dict(request.query_params)
    params.update(parse_qsl((await request.body()).decode("latin-1")))
    if params.get("grant_type") != "client_credentials":
        return _oauth_error(errors.UNSUPPORTED_GRANT_TYPE)
    scope = params.get("scope")
    # Like Cognito, no scope means every scope the client may have; that is this one.
    if scope is not None and set(scope.split()) != {PARTNER_SCOPE}:
        return _oauth_error(errors.INVALID_SCOPE)
    assert caller.partner is not None
    token = state.mint_partner_token(caller.partner)
    body = {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"}
    return _json(body, headers={"Cache-Control": "no-store"})


async def _json_body(request: Request, *, required: bool) -> object:
    """The parsed JSON body, `{}` for an allowed empty body, or the error response."""
    raw = await request.body()
    if not required and not raw.strip():
        return {}
    if _media_type(request) != JSON_MEDIA_TYPE:
        message = "Content-Type must be application/json"
        return _json(errors.error_list(errors.UNSUPPORTED_MEDIA_TYPE_ERROR_KEY, message), 415)
    try:
        return cast(object, json.loads(raw))
    except ValueError:
        return _bad_request(errors.MALFORMED_JSON_ERROR_KEY, "The request body is not valid JSON.")


async def _create_account(request: Request, state: SandboxState, caller: Caller) -> Response:
    body = await _json_body(request, required=True)
    if isinstance(body, Response):
        return body
    problems = validate_provision(body)
    if problems or not isinstance(body, dict):
        messages = [f"{problem['field']}: {problem['message']}" for problem in problems]
        return _bad_request(errors.VALIDATION_ERROR_KEY, *messages)
    assert caller.partner is not None
    try:
        account = state.provision(caller.partner.key, body)
    except LoginNameTaken:
        return _json(errors.error_list(errors.CONFLICT_ERROR_KEY, errors.LOGIN_TAKEN_MESSAGE), 409)
    created = {
        "encoded_account_id": account.encoded_account_id,
        "provision_uuid": account.provision_uuid,
    }
    return _json(created, 201)


async def _list_accounts(request: Request, state: SandboxState, caller: Caller) -> Response:
    params = request.query_params
    limit = page_limit(params.get("limit"))
    offset = decode_offset(params.get("offset"))
    account_type = params.get("account_type", "all")
    problems = []
    if offset is None:
        problems.append("offset: is not an offset this server gave out")
    if account_type not in ACCOUNT_TYPES:
        problems.append("account_type: must be all, managed or unmanaged")
    if problems or offset is None:
        return _bad_request(errors.VALIDATION_ERROR_KEY, *problems)
    assert caller.partner is not None
    kind = cast(AccountType, account_type)
    accounts, more = state.page(caller.partner.key, kind, offset, limit)
    now = state.now()
    body: dict[str, Any] = {"site_owner_list": [_site_owner(account, now) for account in accounts]}
    if more:
        href = f"/v3/partner/accounts?offset={encode_offset(offset + limit)}&limit={limit}"
        if account_type != "all":
            href += f"&account_type={account_type}"
        body["_links"] = {"next": {"href": href}}
    return _json(body)


def _site_owner(account: Account, now: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "encoded_account_id": account.encoded_account_id,
        "site_owner_name": account.site_owner_name,
        "billing_status": billing_status(account, now),
        "subscriber_count": account.subscriber_count,
    }
    if account.organization_name is not None:
        item["organization_name"] = account.organization_name
    # The contract types it as a date-time string, so "null if never logged in" is left out.
    if account.last_login_date is not None:
        item["last_login_date"] = iso(account.last_login_date)
    return item


def _managed_account(request: Request, state: SandboxState, caller: Caller) -> Account | Response:
    account = state.find(request.path_params["encoded_account_id"])
    if account is None:
        return _json(errors.error_list(errors.NOT_FOUND_ERROR_KEY, errors.NOT_FOUND_MESSAGE), 404)
    if caller.partner is None or account.partner != caller.partner.key:
        return _bad_request(errors.NOT_MANAGED_ERROR_KEY, errors.NOT_MANAGED_MESSAGE)
    return account


async def _get_plan(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = _managed_account(request, state, caller)
    if isinstance(account, Response):
        return account
    return _json(plan_tiers(account, state.now()))


async def _put_plan(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = _managed_account(request, state, caller)
    if isinstance(account, Response):
        return account
    body = await _json_body(request, required=False)
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict):
        return _bad_request(errors.VALIDATION_ERROR_KEY, "body: must be a JSON object")
    problems: list[str] = []
    plan_type = body.get("plan_type")
    if not isinstance(plan_type, str):
        problems.append("plan_type: is required and must be a string")
    try:
        billing_day = _billing_day(body.get("billing_day_of_month"))
    except ValueError:
        billing_day = None
        problems.append("billing_day_of_month: must be an integer from 1 to 31")
    group = body.get("plan_group_id")
    if group is not None and (isinstance(group, bool) or not isinstance(group, int)):
        problems.append("plan_group_id: must be an integer")
    if problems or not isinstance(plan_type, str):
        return _bad_request(errors.VALIDATION_ERROR_KEY, *problems)
    try:
        state.change_plan(account, plan_type, billing_day)
    except PlanRejected as rejected:
        return _bad_request(errors.PLAN_ERROR_KEY, str(rejected))
    return _json(plan_tiers(account, state.now()))


def _billing_day(value: object) -> int | None:
    """The day (None when absent); the docs send it as a string, the contract as an int."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 31:
        raise ValueError("not a day of the month")
    return value


async def _cancel(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = _managed_account(request, state, caller)
    if isinstance(account, Response):
        return account
    body = await _json_body(request, required=False)
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict):
        return _bad_request(errors.VALIDATION_ERROR_KEY, "body: must be a JSON object")
    problems: list[str] = []
    effective_at = None
    raw_date = body.get("effective_date")
    if raw_date is not None:
        try:
            effective_at = parse_iso(raw_date) if isinstance(raw_date, str) else None
        except ValueError:
            effective_at = None
        if effective_at is None:
            problems.append("effective_date: must be an ISO-8601 date-time")
    reason_id = body.get("reason_id")
    if reason_id is not None and (
        isinstance(reason_id, bool)
        or not isinstance(reason_id, int)
        or reason_id not in CANCEL_REASONS
    ):
        known = ", ".join(str(reason) for reason in CANCEL_REASONS)
        problems.append(f"reason_id: must be one of {known}")
    if problems:
        return _bad_request(errors.VALIDATION_ERROR_KEY, *problems)
    state.cancel(account, effective_at, reason_id)
    return _json(cancellation(account))


async def _account_summary(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = caller.account
    assert account is not None
    partner = state.partners.get(account.partner) if account.partner else None
    customer: dict[str, Any] = {
        "encoded_account_id": account.encoded_account_id,
        "encoded_partner_id": partner.encoded_partner_id if partner else "",
        "contact_email": account.contact_email,
        "country_code": account.country_code,
        "state_code": account.state_code,
    }
    optional = {
        "contact_phone": account.contact_phone,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "organization_name": account.organization_name,
        "organization_phone": account.organization_phone,
        "time_zone_id": account.time_zone_id,
        "website": account.website,
    }
    customer.update({name: value for name, value in optional.items() if value is not None})
    return _json(customer)


# Routes


def _endpoint(
    operation: Operation, authenticate: Authenticate, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, operation, authenticate, handler)

    return endpoint


async def _partner_accounts(request: Request) -> Response:
    if request.method == "POST":
        return await _serve(request, Operation.CREATE, _partner_caller, _create_account)
    return await _serve(request, Operation.LIST, _partner_caller, _list_accounts)


async def _plan(request: Request) -> Response:
    handler = _put_plan if request.method == "PUT" else _get_plan
    return await _serve(request, Operation.PLAN, _partner_caller, handler)


ACCOUNT_PATH = "/v3/partner/accounts/{encoded_account_id}"

routes = [
    Route(
        "/oauth2/token", _endpoint(Operation.TOKEN, _token_client, _issue_token), methods=["POST"]
    ),
    Route("/v3/partner/accounts", _partner_accounts, methods=["GET", "POST"]),
    Route(f"{ACCOUNT_PATH}/plan", _plan, methods=["GET", "PUT"]),
    Route(
        f"{ACCOUNT_PATH}/status/cancel",
        _endpoint(Operation.CANCEL, _partner_caller, _cancel),
        methods=["PUT"],
    ),
    Route(
        "/v3/account/summary",
        _endpoint(Operation.SUMMARY, _user_caller, _account_summary),
        methods=["GET"],
    ),
]
