"""CTCT's HTTP surface: the token endpoint, `/v3/partner/*` and `/v3/account/summary`.

Each operation is a `Handler` served through `pipeline.serve` (authenticate, count, apply faults,
run, log); who may call is decided in `authentication`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.ctct.provision_rules import validate_provision
from app.sandbox import errors
from app.sandbox.accounts import ACCOUNT_TYPES, Account, AccountType, LoginNameTaken
from app.sandbox.authentication import issue_token, partner_caller, token_client, user_caller
from app.sandbox.faults import Operation
from app.sandbox.paging import decode_offset, encode_offset, page_limit
from app.sandbox.pipeline import (
    JSON_MEDIA_TYPE,
    Caller,
    bad_request,
    endpoint_for,
    json_response,
    media_type,
    serve,
)
from app.sandbox.plans import (
    CANCEL_REASONS,
    PlanRejected,
    billing_status,
    cancellation,
    plan_tiers,
)
from app.sandbox.state import SandboxState
from app.sandbox.timefmt import iso, parse_iso


async def _json_body(request: Request, *, required: bool) -> object:
    """The parsed JSON body, `{}` for an allowed empty body, or the error response."""
    raw = await request.body()
    if not required and not raw.strip():
        return {}
    if media_type(request) != JSON_MEDIA_TYPE:
        message = "Content-Type must be application/json"
        return json_response(
            errors.error_list(errors.UNSUPPORTED_MEDIA_TYPE_ERROR_KEY, message), 415
        )
    try:
        return cast(object, json.loads(raw))
    except ValueError:
        return bad_request(errors.MALFORMED_JSON_ERROR_KEY, "The request body is not valid JSON.")


async def _create_account(request: Request, state: SandboxState, caller: Caller) -> Response:
    body = await _json_body(request, required=True)
    if isinstance(body, Response):
        return body
    problems = validate_provision(body)
    if problems or not isinstance(body, dict):
        messages = [f"{problem['field']}: {problem['message']}" for problem in problems]
        return bad_request(errors.VALIDATION_ERROR_KEY, *messages)
    assert caller.partner is not None
    try:
        account = state.provision(caller.partner.key, body)
    except LoginNameTaken:
        return json_response(
            errors.error_list(errors.CONFLICT_ERROR_KEY, errors.LOGIN_TAKEN_MESSAGE), 409
        )
    created = {
        "encoded_account_id": account.encoded_account_id,
        "provision_uuid": account.provision_uuid,
    }
    return json_response(created, 201)


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
        return bad_request(errors.VALIDATION_ERROR_KEY, *problems)
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
    return json_response(body)


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
        return json_response(
            errors.error_list(errors.NOT_FOUND_ERROR_KEY, errors.NOT_FOUND_MESSAGE), 404
        )
    if caller.partner is None or account.partner != caller.partner.key:
        return bad_request(errors.NOT_MANAGED_ERROR_KEY, errors.NOT_MANAGED_MESSAGE)
    return account


async def _get_plan(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = _managed_account(request, state, caller)
    if isinstance(account, Response):
        return account
    return json_response(plan_tiers(account, state.now()))


async def _put_plan(request: Request, state: SandboxState, caller: Caller) -> Response:
    account = _managed_account(request, state, caller)
    if isinstance(account, Response):
        return account
    body = await _json_body(request, required=False)
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict):
        return bad_request(errors.VALIDATION_ERROR_KEY, "body: must be a JSON object")
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
        return bad_request(errors.VALIDATION_ERROR_KEY, *problems)
    try:
        state.change_plan(account, plan_type, billing_day)
    except PlanRejected as rejected:
        return bad_request(errors.PLAN_ERROR_KEY, str(rejected))
    return json_response(plan_tiers(account, state.now()))


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
        return bad_request(errors.VALIDATION_ERROR_KEY, "body: must be a JSON object")
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
        return bad_request(errors.VALIDATION_ERROR_KEY, *problems)
    state.cancel(account, effective_at, reason_id)
    return json_response(cancellation(account))


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
    return json_response(customer)


# Routes


async def _partner_accounts(request: Request) -> Response:
    if request.method == "POST":
        return await serve(request, Operation.CREATE, partner_caller, _create_account)
    return await serve(request, Operation.LIST, partner_caller, _list_accounts)


async def _plan(request: Request) -> Response:
    handler = _put_plan if request.method == "PUT" else _get_plan
    return await serve(request, Operation.PLAN, partner_caller, handler)


ACCOUNT_PATH = "/v3/partner/accounts/{encoded_account_id}"

routes = [
    Route(
        "/oauth2/token", endpoint_for(Operation.TOKEN, token_client, issue_token), methods=["POST"]
    ),
    Route("/v3/partner/accounts", _partner_accounts, methods=["GET", "POST"]),
    Route(f"{ACCOUNT_PATH}/plan", _plan, methods=["GET", "PUT"]),
    Route(
        f"{ACCOUNT_PATH}/status/cancel",
        endpoint_for(Operation.CANCEL, partner_caller, _cancel),
        methods=["PUT"],
    ),
    Route(
        "/v3/account/summary",
        endpoint_for(Operation.SUMMARY, user_caller, _account_summary),
        methods=["GET"],
    ),
]
