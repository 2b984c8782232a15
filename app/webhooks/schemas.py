"""What the webhook-delivery endpoints return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    event_type: str
    url: str
    payload: dict[str, Any]
    state: str
    attempts: int
    last_status_code: int | None
    last_response: str | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class ClientStatusChangedData(BaseModel):
    """`data` of `client.status_changed`: one status event of a client."""

    encoded_account_id: str
    from_status: str | None = Field(description="null for a client seen for the first time")
    to_status: str = Field(
        description="approved, billing_approved, other_partner, unaffiliated or unverified"
    )
    reason: str
    source: str = Field(description="audit, probe, person, ctct_webhook, ...")
    actor: str | None
    status_event_id: int
    audit_run_id: int | None


class ProvisioningFinishedData(BaseModel):
    """`data` of `provisioning.finished`: a provisioning request reached its end."""

    provisioning_request_id: int
    state: str = Field(description="succeeded, failed or needs_attention")
    encoded_account_id: str | None
    error: str | None


class _Event(BaseModel):
    timestamp: datetime = Field(description="when the change happened (UTC)")


class ClientStatusChangedEvent(_Event):
    """The body of a `client.status_changed` delivery."""

    type: Literal["client.status_changed"]
    data: ClientStatusChangedData


class ProvisioningFinishedEvent(_Event):
    """The body of a `provisioning.finished` delivery."""

    type: Literal["provisioning.finished"]
    data: ProvisioningFinishedData
