"""The control API under `/_sandbox/`: seed and inspect accounts, drive time, limits, faults.

Errors are `{"error": "<message>"}` with 400 (bad input), 404 (unknown id) or 409 (clash).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.accounts import Account, AccountIdTaken, LoginNameTaken
from app.sandbox.errors import InvalidInput
from app.sandbox.faults import FaultKind, Operation
from app.sandbox.plans import billing_status
from app.sandbox.state import SandboxState, UnknownAccount, sandbox_state
from app.sandbox.timefmt import parse_iso

MAX_CONTROL_PAGE = 1_000
_SEED_TEXT_FIELDS = (
    "login_name",
    "encoded_account_id",
    "organization_name",
    "contact_email",
    "first_name",
    "last_name",
    "country_code",
    "state_code",
    "plan_type",
    "billing_status",
)


class _BadInput(Exception):
    """The control request is malformed; the message says how."""


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _object_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _BadInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadInput("the body must be a JSON object")
    return body


def _account_json(state: SandboxState, account: Account) -> dict[str, Any]:
    body = account.to_json()
    body["billing_status"] = billing_status(account, state.now())
    return body


def _optional_int(body: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _BadInput(f"{name} must be an integer >= {minimum}")
    return value


def _optional_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _BadInput(f"{name} must be a non-negative number")
    return float(value)


async def _status(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).status())


async def _partners(request: Request) -> Response:
    state = sandbox_state(request)
    return JSONResponse({"partners": [partner.to_json() for partner in state.partners.values()]})


async def _reset(request: Request) -> Response:
    state = sandbox_state(request)
    state.reset()
    return JSONResponse(state.status())


async def _list_accounts(request: Request) -> Response:
    state = sandbox_state(request)
    params = request.query_params
    if "login_name" in params:
        found = state.find_by_login(params["login_name"])
        accounts = [found] if found is not None else []
    else:
        accounts = state.list_accounts(params.get("partner"))
    try:
        offset = int(params.get("offset", "0"))
        limit = min(int(params.get("limit", str(MAX_CONTROL_PAGE))), MAX_CONTROL_PAGE)
    except ValueError:
        raise _BadInput("offset and limit must be integers") from None
    page = [_account_json(state, account) for account in accounts[offset : offset + limit]]
    return JSONResponse({"total": len(accounts), "accounts": page})


async def _seed_accounts(request: Request) -> Response:
    state = sandbox_state(request)
    body = await _object_body(request)
    partner = body.get("partner", "ours")
    if not isinstance(partner, str):
        raise _BadInput("partner must be ours, other or none")
    if "count" in body:
        count = _optional_int(body, "count") or 0
        prefix = body.get("login_prefix", "seed")
        if not isinstance(prefix, str) or not prefix:
            raise _BadInput("login_prefix must be a non-empty string")
        created = state.seed_accounts(count, partner=partner, login_prefix=prefix)
        ids = [account.encoded_account_id for account in created]
        return JSONResponse({"count": len(created), "encoded_account_ids": ids}, status_code=201)
    fields: dict[str, Any] = {}
    for name in _SEED_TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise _BadInput(f"{name} must be a string")
        if value is not None:
            fields[name] = value
    last_login = body.get("last_login_date")
    if last_login is not None:
        try:
            fields["last_login_date"] = parse_iso(str(last_login))
        except ValueError:
            raise _BadInput("last_login_date must be an ISO-8601 date-time") from None
    managed = body.get("managed", True)
    if not isinstance(managed, bool):
        raise _BadInput("managed must be a boolean")
    account = state.seed_account(
        partner=partner,
        billing_day_of_month=_optional_int(body, "billing_day_of_month", minimum=1),
        subscriber_count=_optional_int(body, "subscriber_count") or 0,
        managed=managed,
        **fields,
    )
    return JSONResponse(_account_json(state, account), status_code=201)


async def _get_account(request: Request) -> Response:
    state = sandbox_state(request)
    account = state.find(request.path_params["encoded_account_id"])
    if account is None:
        return _error("no such account", 404)
    return JSONResponse(_account_json(state, account))


async def _move_account(request: Request) -> Response:
    body = await _object_body(request)
    partner = body.get("partner")
    if not isinstance(partner, str):
        raise _BadInput("partner must be ours, other or none")
    state = sandbox_state(request)
    account = state.move(request.path_params["encoded_account_id"], partner)
    return JSONResponse(_account_json(state, account))


async def _mint_user_token(request: Request) -> Response:
    body = await _object_body(request)
    api_key = body.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise _BadInput("api_key must be a string")
    token = sandbox_state(request).mint_user_token(
        request.path_params["encoded_account_id"], api_key=api_key
    )
    return JSONResponse({"access_token": token, "token_type": "Bearer"}, status_code=201)


async def _calls(request: Request) -> Response:
    state = sandbox_state(request)
    if request.method == "DELETE":
        state.calls.clear()
        return Response(status_code=204)
    params = request.query_params
    calls = state.calls.calls(params.get("path_prefix", ""), params.get("method"))
    return JSONResponse({"calls": [call.to_json() for call in calls]})


async def _faults(request: Request) -> Response:
    state = sandbox_state(request)
    if request.method == "DELETE":
        state.clear_faults()
        return Response(status_code=204)
    if request.method == "GET":
        now = state.now()
        return JSONResponse({"faults": [fault.to_json(now) for fault in state.faults.faults()]})
    body = await _object_body(request)
    try:
        kind = FaultKind(str(body.get("kind")))
        operation = Operation(str(body.get("operation", "all")))
    except ValueError:
        kinds = ", ".join(kind.value for kind in FaultKind)
        operations = ", ".join(operation.value for operation in Operation)
        raise _BadInput(f"kind must be one of {kinds}; operation one of {operations}") from None
    fault = state.add_fault(
        kind,
        operation,
        count=_optional_int(body, "count", minimum=1),
        seconds=_optional_number(body, "seconds"),
        delay_seconds=_optional_number(body, "delay_seconds") or 0.0,
        after=_optional_int(body, "after") or 0,
    )
    return JSONResponse(fault.to_json(state.now()), status_code=201)


async def _delete_fault(request: Request) -> Response:
    try:
        fault_id = int(request.path_params["fault_id"])
    except ValueError:
        return _error("no such fault", 404)
    if not sandbox_state(request).remove_fault(fault_id):
        return _error("no such fault", 404)
    return Response(status_code=204)


async def _clock(request: Request) -> Response:
    state = sandbox_state(request)
    return JSONResponse({"now": state.now().isoformat(), "frozen": state.clock.frozen})


async def _advance_clock(request: Request) -> Response:
    state = sandbox_state(request)
    seconds = _optional_number(await _object_body(request), "seconds")
    if seconds is None:
        raise _BadInput("seconds is required")
    state.advance_clock(seconds)
    return JSONResponse({"now": state.now().isoformat(), "frozen": state.clock.frozen})


async def _limits(request: Request) -> Response:
    state = sandbox_state(request)
    if request.method == "PUT":
        body = await _object_body(request)
        state.set_limits(
            rate_per_second=_optional_int(body, "rate_per_second", minimum=1),
            daily_quota=_optional_int(body, "daily_quota"),
        )
    return JSONResponse(state.limits())


async def _invalidate_tokens(request: Request) -> Response:
    sandbox_state(request).invalidate_partner_tokens()
    return Response(status_code=204)


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except (_BadInput, InvalidInput) as problem:
            return _error(str(problem))
        except UnknownAccount:
            return _error("no such account", 404)
        except (LoginNameTaken, AccountIdTaken) as clash:
            return _error(f"already in use: {clash}", 409)
        return response

    return guarded


ACCOUNT = "/accounts/{encoded_account_id}"

routes = [
    Route("/", _guarded(_status), methods=["GET"]),
    Route("/partners", _guarded(_partners), methods=["GET"]),
    Route("/reset", _guarded(_reset), methods=["POST"]),
    Route("/accounts", _guarded(_list_accounts), methods=["GET"]),
    Route("/accounts", _guarded(_seed_accounts), methods=["POST"]),
    Route(ACCOUNT, _guarded(_get_account), methods=["GET"]),
    Route(f"{ACCOUNT}/partner", _guarded(_move_account), methods=["PUT"]),
    Route(f"{ACCOUNT}/user-tokens", _guarded(_mint_user_token), methods=["POST"]),
    Route("/calls", _guarded(_calls), methods=["GET", "DELETE"]),
    Route("/faults", _guarded(_faults), methods=["GET", "POST", "DELETE"]),
    Route("/faults/{fault_id}", _guarded(_delete_fault), methods=["DELETE"]),
    Route("/clock", _guarded(_clock), methods=["GET"]),
    Route("/clock/advance", _guarded(_advance_clock), methods=["POST"]),
    Route("/limits", _guarded(_limits), methods=["GET", "PUT"]),
    Route("/tokens/expire", _guarded(_invalidate_tokens), methods=["POST"]),
    Route("/tokens/revoke", _guarded(_invalidate_tokens), methods=["POST"]),
]
