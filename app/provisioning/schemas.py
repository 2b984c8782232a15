"""What the provisioning endpoints send and accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.clients.models import Client
from app.kit.inputs import InputModel, Int32, ZonedDatetime
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


class PlanChange(InputModel):
    """`PUT /v1/accounts/{id}/plan`: a non-TRIAL plan on a canceled account reactivates it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"plan_type": "GOLD", "billing_day_of_month": 1}]}
    )

    plan_type: str = Field(
        min_length=1,
        max_length=32,
        description="TRIAL, BRONZE, SILVER, GOLD, or an older plan of our plan group",
    )
    billing_day_of_month: int | None = Field(
        default=None, ge=1, le=31, description="used only when leaving TRIAL"
    )
    plan_group_id: Int32 | None = Field(default=None, description="absent: the current group")


class Cancellation(InputModel):
    """`POST /v1/accounts/{id}/cancel` (every field optional; an empty body cancels now)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"effective_date": "2030-01-31T00:00:00Z", "reason_id": 14}]
        }
    )

    effective_date: ZonedDatetime | None = Field(
        default=None, description="with a UTC offset (`Z` or `+02:00`); absent: now"
    )
    reason_id: Int32 | None = Field(
        default=None, description="CTCT's reason: 1, 2, 3, 11, 12, 14, 21, 27 or 30"
    )


class TierOut(BaseModel):
    """One billing tier of a plan, as CTCT reports it (`TierObject`)."""

    usage_type: str | None = Field(default=None, examples=["CONTACTS"])
    current_usage: float | None = None
    tier: int | None = None
    tier_min: float | None = None
    tier_max: float | None = None
    price: float | None = None
    currency_code: str | None = Field(default=None, examples=["USD"])


class PlanOut(BaseModel):
    """An account's plan as CTCT reports it (`PlanTiersObject`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan_type": "GOLD",
                    "billing_status": "Open",
                    "billing_day_of_month": 29,
                    "current_tiers": [
                        {
                            "usage_type": "CONTACTS",
                            "current_usage": 1.0,
                            "tier": 1,
                            "tier_min": 0.0,
                            "tier_max": 500.0,
                            "price": 20.0,
                            "currency_code": "USD",
                        }
                    ],
                }
            ]
        }
    )

    plan_type: str | None = Field(description="TRIAL, BRONZE, SILVER, GOLD, or an older plan")
    billing_status: str | None = Field(description="Trial, Open, Canceled, Trial End, ...")
    billing_day_of_month: int | None = Field(description="1-31; null during the trial")
    current_tiers: list[TierOut]


class CancellationOut(BaseModel):
    """The cancellation as CTCT recorded it (`AccountCancellation`)."""

    effective_date: datetime | None = Field(description="when it takes (or took) effect")
    reason_id: int | None
