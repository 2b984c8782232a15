"""`GET /v1/access/{encoded_account_id}` and `POST /v1/access:batch`.

The single check is the hot path: it returns a plain `JSONResponse` built from a dict (no
response-model validation) and logs nothing per request; metrics count the decisions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.access.schemas import AccessBatchRequest, AccessBatchResponse, AccessDecision
from app.auth.scopes import Scope
from app.auth.service import Principal
from app.clients.schemas import ACCOUNT_ID, ACCOUNT_ID_RULE, ACCOUNT_ID_SCHEMA, check_account_id
from app.deps import authenticate, authorize
from app.errors import FieldError, ValidationFailed
from app.state import AccessDecisions, AppState

router = APIRouter(prefix="/v1", tags=["access"])

CONSISTENCY_VALUES = ("cached", "fresh")


_BEARER_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": [Scope.ACCESS_CHECK.value]}]}


async def _checker(request: Request) -> tuple[Principal, AccessDecisions]:
    """`AccessCheckerDep` in one step, plus the service.

    The same checks as `app.deps.require(ACCESS_CHECK)` without FastAPI's dependency resolution,
    which costs tens of microseconds per node, more than the hot path can spare.
    """
    state: AppState = request.app.state.resources
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    principal = authorize(await authenticate(state, secret), Scope.ACCESS_CHECK)
    return principal, state.access


CheckerDep = Annotated[tuple[Principal, AccessDecisions], Depends(_checker)]


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
async def check_access(request: Request) -> JSONResponse:
    """The decision for one account, from our store (`fresh`: after asking CTCT).

    Parameters are read from the request by hand (and documented above): this is the hot path,
    and FastAPI's parameter and dependency resolution would cost more than the decision itself.
    """
    principal, service = await _checker(request)
    encoded_account_id: str = request.path_params["encoded_account_id"]
    check_account_id(encoded_account_id)
    consistency = request.query_params.get("consistency") if request.scope["query_string"] else None
    if consistency is None or consistency == "cached":
        decision = await service.check(encoded_account_id, actor_name=principal.name)
    elif consistency == "fresh":
        decision = await service.check_fresh(encoded_account_id, actor_name=principal.name)
    else:
        raise ValidationFailed(
            [FieldError("consistency", f"must be one of {', '.join(CONSISTENCY_VALUES)}")]
        )
    return JSONResponse(decision)


@router.post(
    "/access:batch",
    response_model=AccessBatchResponse,
    summary="Decisions for up to 1,000 accounts at once",
    openapi_extra=_BEARER_SECURITY,
)
async def check_access_batch(body: AccessBatchRequest, checker: CheckerDep) -> JSONResponse:
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
    return JSONResponse({"decisions": decisions})
