"""`/v1/accounts` (create and plan/cancel passthrough) and `/v1/provisioning` (requests)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Request
from fastapi.responses import JSONResponse

from app.clients.schemas import ACCOUNT_ID
from app.deps import CursorsDep, ProvisionerDep, SessionDep, SettingsDep
from app.errors import PROBLEM_CONTENT_TYPE
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from app.provisioning import plans, service, submit_flow
from app.provisioning.deps import ProvisioningResourcesDep
from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState
from app.provisioning.schemas import Cancellation, PlanChange, ProvisioningRequestOut

accounts_router = APIRouter(prefix="/v1/accounts", tags=["provisioning"])
provisioning_router = APIRouter(prefix="/v1/provisioning", tags=["provisioning"])

AccountId = Annotated[str, Path(pattern=f"^{ACCOUNT_ID.pattern}$")]


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
    responses={
        202: {"description": "stored; CTCT is unavailable and the worker keeps trying"},
        400: {"description": "every field error, or a missing Idempotency-Key"},
        409: {"description": "the login name is taken"},
        422: {"description": "the Idempotency-Key was used with another body"},
    },
)
async def create_account(
    http: Request,
    caller: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    body: Annotated[Any, Body(description="CTCT's create-account body (`Provision`)")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Provision a CTCT client account, exactly once per Idempotency-Key."""
    submission = await submit_flow.submit(resources, caller, idempotency_key, body)
    return _answer(http, submission.request, replayed=submission.replayed)


@accounts_router.get("/{account_id}/plan")
async def get_plan(
    _: ProvisionerDep, resources: ProvisioningResourcesDep, account_id: AccountId
) -> Any:
    """The account's plan and billing status, from CTCT."""
    return await plans.get_plan(resources, account_id)


@accounts_router.put("/{account_id}/plan")
async def set_plan(
    _: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    account_id: AccountId,
    change: PlanChange,
) -> Any:
    """Change the plan; a non-TRIAL plan on a canceled account reactivates it."""
    return await plans.set_plan(resources, account_id, change)


@accounts_router.post("/{account_id}/cancel")
async def cancel(
    _: ProvisionerDep,
    resources: ProvisioningResourcesDep,
    account_id: AccountId,
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


@provisioning_router.get("/{request_id}")
async def get_request(
    _: ProvisionerDep, session: SessionDep, request_id: Annotated[int, Path(ge=1)]
) -> ProvisioningRequestOut:
    """A request's state, attempts, last error and result."""
    return ProvisioningRequestOut.of(await service.get(session, request_id))


@provisioning_router.post("/{request_id}/retry", status_code=202)
async def retry_request(
    http: Request,
    principal: ProvisionerDep,
    session: SessionDep,
    settings: SettingsDep,
    request_id: Annotated[int, Path(ge=1)],
) -> JSONResponse:
    """Queue a failed or needs_attention request again (while its password is still held)."""
    request = await service.requeue(
        session, request_id, max_age=settings.provision.max_age, by=principal.name
    )
    return _answer(http, request, replayed=False)
