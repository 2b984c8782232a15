"""What the provisioning endpoints send and accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.clients.models import Client
from app.provisioning.models import ProvisioningRequest


class ProvisioningRequestOut(BaseModel):
    """A provisioning request as callers and the dashboard see it (never the password)."""

    id: int
    state: str
    login_name: str
    api_key_name: str
    attempts: int
    outcome_unknown: bool = Field(
        description="an earlier attempt may have reached CTCT; the next one checks our list first"
    )
    retryable: bool = Field(description="the encrypted password is still held, so /retry works")
    next_attempt_at: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    encoded_account_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, request: ProvisioningRequest) -> ProvisioningRequestOut:
        pending = request.state == "pending"
        return cls(
            id=request.id,
            state=request.state,
            login_name=request.login_name,
            api_key_name=request.api_key_name,
            attempts=request.attempts,
            outcome_unknown=request.may_exist,
            retryable=request.password_ciphertext is not None or "external_id" in request.payload,
            next_attempt_at=request.next_attempt_at if pending else None,
            last_error=request.last_error,
            result=request.result,
            encoded_account_id=request.encoded_account_id,
            created_at=request.created_at,
            updated_at=request.updated_at,
            finished_at=request.finished_at,
        )


class ProvisionedClient(BaseModel):
    """The client a successful provisioning created (201 body)."""

    model_config = ConfigDict(from_attributes=True)

    encoded_account_id: str
    login_name: str | None
    organization_name: str | None
    contact_email: str | None
    billing_status: str | None
    plan_type: str | None
    status: str
    status_reason: str
    verified_at: datetime | None
    verified_via: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, client: Client) -> ProvisionedClient:
        return cls.model_validate(client)


class PlanChange(BaseModel):
    """`PUT /v1/accounts/{id}/plan`: a non-TRIAL plan on a canceled account reactivates it."""

    model_config = ConfigDict(extra="forbid")

    plan_type: str = Field(min_length=1, max_length=32)
    billing_day_of_month: int | None = Field(default=None, ge=1, le=31)
    plan_group_id: int | None = None


class Cancellation(BaseModel):
    """`POST /v1/accounts/{id}/cancel`."""

    model_config = ConfigDict(extra="forbid")

    effective_date: datetime | None = None
    reason_id: int | None = None
