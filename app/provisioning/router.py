"""`/v1/accounts` (create and plan/cancel passthrough) and `/v1/provisioning` (requests)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from app.clients.schemas import AccountIdPath
from app.ctct.provision_body import ProvisionBody
from app.deps import CursorsDep, ProvisionerDep, SessionDep, SettingsDep
from app.errors import PROBLEM_CONTENT_TYPE, Responses
from app.kit.inputs import RowId
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from app.provisioning import plans, service, submit_flow
from app.provisioning.deps import ProvisioningResourcesDep
from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState
from app.provisioning.schemas import (
    Cancellation,
    CancellationOut,
    PlanChange,
    PlanOut,
    ProvisionedClient,
    ProvisioningRequestOut,
)

accounts_router = APIRouter(prefix="/v1/accounts", tags=["provisioning"])
provisioning_router = APIRouter(prefix="/v1/provisioning", tags=["provisioning"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="required: one key per account to create (a UUID will do)",
    ),
    # Checked by `service.checked_idempotency_key` (a 400 `idempotency-key-invalid`).
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": service.MAX_IDEMPOTENCY_KEY_LENGTH,
            "pattern": f"^{service.IDEMPOTENCY_KEY.pattern}$",
            "examples": ["5f0c7a8e-4c1e-4d0b-9a43-3f6b8a1d2e77"],
        }
    ),
]
_CTCT_CALL_RESPONSES: Responses = {
    404: {"description": "CTCT has no such account under our partner"},
    409: {"description": "the account belongs to another partner"},
    503: {"description": "CTCT could not answer, or our call budget is spent for now"},
}


def _answer(http: Request, request: ProvisioningRequest, *, replayed: bool) -> JSONResponse:
    """A create call's answer: the request's recorded final answer once it has ended (201 with
    the client, or its problem), else 202 with the request and where to watch it."""
    location = provisioning_router.url_path_for("get_request", request_id=str(request.id))
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    ended = RequestState(request.state) in TERMINAL_STATES
    if ended and request.response_status is not None and request.response_body is not None:
        status, body = request.response_status, dict(request.response_body)
        if status == 201:
            headers["Location"] = location
        if status >= 400:
            body["instance"] = http.url.path
            return JSONResponse(
                body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE
            )
        return JSONResponse(body, status_code=status, headers=headers)
    headers["Location"] = location
    body = ProvisioningRequestOut.of(request).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers=headers)


@accounts_router.post(
    "",
    status_code=201,
    response_model=ProvisionedClient,
    responses={
        201: {"description": "created at CTCT; the client as now stored"},
        202: {
            "model": ProvisioningRequestOut,
            "description": "stored; CTCT is unavailable and the worker keeps trying "
            "(`Location` is the request to watch)",
        },
        400: {"description": "every field error at once, or a missing Idempotency-Key"},
        409: {"description": "the login name is taken, or the request needs attention or expired"},
        422: {"description": "the Idempotency-Key was used with another body"},
    },
)
async def create_account(
    http: Request,
    caller: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    body: Annotated[ProvisionBody, Body(description="CTCT's create-account body (`Provision`)")],
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Provision a CTCT client account, exactly once per Idempotency-Key."""
    submission = await submit_flow.submit(resources, caller, idempotency_key, body)
    return _answer(http, submission.request, replayed=submission.replayed)


@accounts_router.get("/{account_id}/plan", response_model=PlanOut, responses=_CTCT_CALL_RESPONSES)
async def get_plan(
    _: ProvisionerDep, resources: ProvisioningResourcesDep, account_id: AccountIdPath
) -> Any:
    """The account's plan and billing status, from CTCT."""
    return await plans.get_plan(resources, account_id)


@accounts_router.put(
    "/{account_id}/plan",
    response_model=PlanOut,
    responses={**_CTCT_CALL_RESPONSES, 400: {"description": "invalid, or CTCT refused the plan"}},
)
async def set_plan(
    _: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    account_id: AccountIdPath,
    change: PlanChange,
) -> Any:
    """Change the plan; a non-TRIAL plan on a canceled account reactivates it."""
    return await plans.set_plan(resources, account_id, change)


@accounts_router.post(
    "/{account_id}/cancel", response_model=CancellationOut, responses=_CTCT_CALL_RESPONSES
)
async def cancel(
    _: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    account_id: AccountIdPath,
    cancellation: Annotated[Cancellation | None, Body()] = None,
) -> Any:
    """Cancel the account at CTCT."""
    return await plans.cancel(resources, account_id, cancellation or Cancellation())


@provisioning_router.get("")
async def list_requests(
    _: ProvisionerDep,
    session: SessionDep,
    cursors: CursorsDep,
    state: RequestState | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[ProvisioningRequestOut]:
    """Provisioning requests, newest first, optionally in one state."""
    return await service.list_requests(session, cursors, state=state, cursor=cursor, limit=limit)


@provisioning_router.get("/{request_id}", responses={404: {"description": "no such request"}})
async def get_request(
    _: ProvisionerDep, session: SessionDep, request_id: RowId
) -> ProvisioningRequestOut:
    """A request's state, attempts, last error and result."""
    return ProvisioningRequestOut.of(await service.get(session, request_id))


@provisioning_router.post(
    "/{request_id}/retry",
    status_code=202,
    response_model=ProvisioningRequestOut,
    responses={
        404: {"description": "no such request"},
        409: {
            "description": "the request is not failed or needs_attention, or its password "
            "was erased"
        },
    },
)
async def retry_request(
    http: Request,
    principal: ProvisionerDep,
    session: SessionDep,
    settings: SettingsDep,
    request_id: RowId,
) -> JSONResponse:
    """Queue a failed or needs_attention request again (while its password is still held)."""
    request = await service.requeue(
        session, request_id, max_age=settings.provision.max_age, by=principal.name
    )
    return _answer(http, request, replayed=False)
