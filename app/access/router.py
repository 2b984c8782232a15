"""`GET /v1/access/{encoded_account_id}` and `POST /v1/access:batch`.

The single check is the hot path: a plain ASGI endpoint (`app.kit.asgi.JsonEndpoint`) that
authenticates, checks the scope, parses its parameters by hand and sends the decision's bytes;
it logs nothing per request (metrics count the decisions and the requests).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import Scope as AsgiScope

from app.access.schemas import AccessBatchRequest, AccessBatchResponse, AccessDecision
from app.auth.scopes import Scope
from app.auth.service import Principal
from app.clients.schemas import ACCOUNT_ID, ACCOUNT_ID_RULE, ACCOUNT_ID_SCHEMA, check_account_id
from app.deps import authenticate, authorize
from app.errors import FieldError, ValidationFailed
from app.kit.asgi import JsonEndpoint, bearer_secret
from app.state import AccessDecisions, AppState

router = APIRouter(prefix="/v1", tags=["access"])

CONSISTENCY_VALUES = ("cached", "fresh")
ACCESS_CHECK = Scope.ACCESS_CHECK


_BEARER_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": [Scope.ACCESS_CHECK.value]}]}


async def _checker(request: Request) -> tuple[Principal, AccessDecisions]:
    """`AccessCheckerDep` in one step, plus the service."""
    state: AppState = request.app.state.resources
    principal = authorize(await authenticate(state, bearer_secret(request.scope)), ACCESS_CHECK)
    return principal, state.access


CheckerDep = Annotated[tuple[Principal, AccessDecisions], Depends(_checker)]


async def _decision_bytes(scope: AsgiScope) -> bytes:
    """The single check from the raw request: authenticated, scope-checked, parameters parsed
    by hand (documented on `check_access`); a cache hit returns bytes encoded at fill time."""
    state: AppState = scope["app"].state.resources
    principal = authorize(await authenticate(state, bearer_secret(scope)), ACCESS_CHECK)
    encoded_account_id: str = scope["path_params"]["encoded_account_id"]
    check_account_id(encoded_account_id)
    query: bytes = scope["query_string"]
    consistency = dict(parse_qsl(query.decode("latin-1"))).get("consistency") if query else None
    if consistency is None or consistency == "cached":
        return await state.access.check_encoded(encoded_account_id, actor_name=principal.name)
    if consistency == "fresh":
        decision = await state.access.check_fresh(encoded_account_id, actor_name=principal.name)
        return orjson.dumps(decision)
    raise ValidationFailed(
        [FieldError("consistency", f"must be one of {', '.join(CONSISTENCY_VALUES)}")]
    )


# The hot path, served ahead of every other route (see app.kit.asgi and create_app).
ACCESS_CHECK_ENDPOINT = JsonEndpoint("/v1/access/{encoded_account_id}", _decision_bytes)


@router.get(
    "/access/{encoded_account_id}",
    response_model=AccessDecision,
    summary="May this account use the integration now?",
    openapi_extra={
        **_BEARER_SECURITY,
        "parameters": [
            {
                "name": "encoded_account_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", **ACCOUNT_ID_SCHEMA},
            },
            {
                "name": "consistency",
                "in": "query",
                "required": False,
                "description": "`cached` (default): answer from our store; "
                "`fresh`: ask CTCT first, within ACCESS_PROBE_TIMEOUT",
                "schema": {"type": "string", "enum": list(CONSISTENCY_VALUES)},
            },
        ],
    },
)
async def check_access(request: Request) -> Response:
    """The decision for one account, from our store (`fresh`: after asking CTCT).

    Served by `ACCESS_CHECK_ENDPOINT`, routed ahead of this twin, which documents it and
    answers the same way if ever reached.
    """
    return Response(await _decision_bytes(request.scope), media_type="application/json")


@router.post(
    "/access:batch",
    response_model=AccessBatchResponse,
    summary="Decisions for up to 1,000 accounts at once",
    openapi_extra=_BEARER_SECURITY,
)
async def check_access_batch(body: AccessBatchRequest, checker: CheckerDep) -> Response:
    """One decision per id, in the order given (duplicates answered each time)."""
    errors = [
        FieldError(f"account_ids.{index}", ACCOUNT_ID_RULE)
        for index, account_id in enumerate(body.account_ids)
        if ACCOUNT_ID.fullmatch(account_id) is None
    ]
    if errors:
        raise ValidationFailed(errors)
    principal, service = checker
    decisions = await service.check_many(body.account_ids, actor_name=principal.name)
    return Response(orjson.dumps({"decisions": decisions}), media_type="application/json")
