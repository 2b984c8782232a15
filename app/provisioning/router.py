"""`/v1/accounts` (create and lifecycle passthrough) and `/v1/provisioning` (requests)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query
from fastapi.responses import JSONResponse

from app.clients.schemas import ACCOUNT_ID
from app.deps import ProvisionerDep as CallerDep
from app.deps import SessionDep, SettingsDep
from app.errors import PROBLEM_CONTENT_TYPE
from app.provisioning import lifecycle, sender, service
from app.provisioning.deps import ProvisionerDep
from app.provisioning.models import RequestState
from app.provisioning.schemas import (
    Cancellation,
    PlanChange,
    ProvisioningPage,
    ProvisioningRequestOut,
)

accounts_router = APIRouter(prefix="/v1/accounts", tags=["provisioning"])
provisioning_router = APIRouter(prefix="/v1/provisioning", tags=["provisioning"])

AccountId = Annotated[str, Path(pattern=f"^{ACCOUNT_ID.pattern}$")]


def _render(reply: service.Reply) -> JSONResponse:
    media_type = PROBLEM_CONTENT_TYPE if reply.status >= 400 else "application/json"
    return JSONResponse(
        reply.body, status_code=reply.status, headers=reply.headers, media_type=media_type
    )


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
    caller: CallerDep,
    provisioner: ProvisionerDep,
    body: Annotated[Any, Body(description="CTCT's create-account body (`Provision`)")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Provision a CTCT client account, exactly once per Idempotency-Key."""
    return _render(await sender.provision(provisioner, caller, idempotency_key, body))


@accounts_router.get("/{account_id}/plan")
async def get_plan(_: CallerDep, provisioner: ProvisionerDep, account_id: AccountId) -> Any:
    """The account's plan and billing status, from CTCT."""
    return await lifecycle.get_plan(provisioner, account_id)


@accounts_router.put("/{account_id}/plan")
async def set_plan(
    _: CallerDep, provisioner: ProvisionerDep, account_id: AccountId, change: PlanChange
) -> Any:
    """Change the plan; a non-TRIAL plan on a canceled account reactivates it."""
    return await lifecycle.set_plan(provisioner, account_id, change)


@accounts_router.post("/{account_id}/cancel")
async def cancel(
    _: CallerDep,
    provisioner: ProvisionerDep,
    account_id: AccountId,
    cancellation: Annotated[Cancellation | None, Body()] = None,
) -> Any:
    """Cancel the account at CTCT."""
    return await lifecycle.cancel(provisioner, account_id, cancellation or Cancellation())


@provisioning_router.get("")
async def list_requests(
    _: CallerDep,
    session: SessionDep,
    state: RequestState | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ProvisioningPage:
    """Provisioning requests, newest first, optionally in one state."""
    return await service.list_requests(session, state=state, cursor=cursor, limit=limit)


@provisioning_router.get("/{request_id}")
async def get_request(
    _: CallerDep, session: SessionDep, request_id: Annotated[int, Path(ge=1)]
) -> ProvisioningRequestOut:
    """A request's state, attempts, last error and result."""
    return ProvisioningRequestOut.of(await service.get(session, request_id))


@provisioning_router.post("/{request_id}/retry", status_code=202)
async def retry_request(
    _: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    request_id: Annotated[int, Path(ge=1)],
) -> JSONResponse:
    """Queue a failed or needs_attention request again (while its password is still held)."""
    return _render(await service.requeue(session, request_id, max_age=settings.provision.max_age))
