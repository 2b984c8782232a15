"""`GET /v1/access/{encoded_account_id}` and `POST /v1/access:batch`.

The single check is the hot path: it returns a plain `JSONResponse` built from a dict (no
response-model validation) and logs nothing per request; metrics count the decisions.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.access.schemas import AccessBatchRequest, AccessBatchResponse, AccessDecision
from app.access.service import AccessService
from app.deps import AccessCheckerDep, StateDep
from app.errors import FieldError, ValidationFailed

router = APIRouter(prefix="/v1", tags=["access"])

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONSISTENCY_VALUES = ("cached", "fresh")
_ID_RULE = "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"


def _service(state: StateDep) -> AccessService:
    service = state.access
    assert service is not None, "the lifespan builds the access service"
    return service


@router.get(
    "/access/{encoded_account_id}",
    response_model=AccessDecision,
    summary="May this account use the integration now?",
)
async def check_access(
    encoded_account_id: str,
    principal: AccessCheckerDep,
    state: StateDep,
    consistency: Annotated[
        str | None,
        Query(description="`cached` (default): answer from our store; `fresh`: ask CTCT first"),
    ] = None,
) -> JSONResponse:
    """The decision for one account, from our store (`fresh`: after asking CTCT)."""
    if ACCOUNT_ID.fullmatch(encoded_account_id) is None:
        raise ValidationFailed([FieldError("encoded_account_id", _ID_RULE)])
    service = _service(state)
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
)
async def check_access_batch(
    body: AccessBatchRequest, principal: AccessCheckerDep, state: StateDep
) -> JSONResponse:
    """One decision per id, in the order given (duplicates answered each time)."""
    errors = [
        FieldError(f"account_ids.{index}", _ID_RULE)
        for index, account_id in enumerate(body.account_ids)
        if ACCOUNT_ID.fullmatch(account_id) is None
    ]
    if errors:
        raise ValidationFailed(errors)
    decisions = await _service(state).check_many(body.account_ids, actor_name=principal.name)
    return JSONResponse({"decisions": decisions})
