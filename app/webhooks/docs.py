"""The events partnergate sends, documented in the OpenAPI document's `webhooks` section.

Every delivery is a Standard Webhooks POST (`webhook-id`, `webhook-timestamp`,
`webhook-signature` signed with the subscriber's secret) whose JSON body is
`{"type", "timestamp", "data"}`; `data` differs by type, as below.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import FastAPI
from pydantic import BaseModel, Field


class StatusChanged(BaseModel):
    encoded_account_id: str
    from_status: str | None = Field(description="null when the client was just added")
    to_status: str
    allowed: bool = Field(description="whether the account may use the integration now")
    reason: str
    source: str = Field(description="provisioning, probe, audit, person, ctct_webhook or import")
    actor: str | None = Field(description="the API key, person or importer behind the change")
    status_event_id: int
    audit_run_id: int | None


class ProvisioningFinished(BaseModel):
    provisioning_request_id: int
    state: str = Field(description="succeeded, failed or needs_attention")
    encoded_account_id: str | None
    error: str | None


class DemotionsHeld(BaseModel):
    audit_run_id: int
    held_demotions: int
    approved_clients: int
    max_demotion_ratio: float
    audit_url: str
    confirm_url: str = Field(description="POST to demote them")
    reject_url: str = Field(description="POST to keep them approved")


class NeedsAttention(BaseModel):
    provisioning_request_id: int
    api_key_name: str | None
    login_name: str | None
    encoded_account_id: str | None
    attempts: int
    error: str | None
    request_url: str
    retry_url: str = Field(description="POST to send it again once a person has checked")


class QuotaLow(BaseModel):
    day: date = Field(description="the UTC day")
    used: int
    daily_quota: int
    remaining: int
    threshold: int = Field(description="CTCT_QUOTA_LOW_THRESHOLD")
    resets_at: datetime


class DeliveryFailing(BaseModel):
    subscriber_id: int
    subscriber_name: str
    host: str | None = Field(description="the subscriber URL's host (the URL may hold a token)")
    consecutive_failures: int = Field(description="WEBHOOK_FAILING_AFTER")
    failing_since: datetime
    last_delivery_id: int
    last_event_id: str
    last_event_type: str
    last_status_code: int | None
    last_error: str | None
    deliveries_url: str


class _Envelope(BaseModel):
    type: str
    timestamp: datetime


class StatusChangedEvent(_Envelope):
    data: StatusChanged


class ProvisioningFinishedEvent(_Envelope):
    data: ProvisioningFinished


class DemotionsHeldEvent(_Envelope):
    data: DemotionsHeld


class NeedsAttentionEvent(_Envelope):
    data: NeedsAttention


class QuotaLowEvent(_Envelope):
    data: QuotaLow


class DeliveryFailingEvent(_Envelope):
    data: DeliveryFailing


def document_events(app: FastAPI) -> None:
    """Add every event type to `app.webhooks` (the OpenAPI document's `webhooks`)."""

    @app.webhooks.post("client.status_changed", summary="A client's status changed")
    def status_changed(body: StatusChangedEvent) -> None:
        """Every status change, with whether the account may use the integration now."""

    @app.webhooks.post("provisioning.finished", summary="A provisioning request ended")
    def provisioning_finished(body: ProvisioningFinishedEvent) -> None:
        """A create call reached its end: succeeded, failed or needs_attention."""

    @app.webhooks.post("audit.demotions_held", summary="An audit holds demotions for a person")
    def demotions_held(body: DemotionsHeldEvent) -> None:
        """More than AUDIT_MAX_DEMOTION_RATIO of approved clients would be demoted."""

    @app.webhooks.post(
        "provisioning.needs_attention", summary="A provisioning request needs a person"
    )
    def needs_attention(body: NeedsAttentionEvent) -> None:
        """Only a person can tell whether the account exists; check, then retry."""

    @app.webhooks.post("ctct.quota_low", summary="Today's CTCT calls run low")
    def quota_low(body: QuotaLowEvent) -> None:
        """Sent once per UTC day when CTCT_QUOTA_LOW_THRESHOLD or fewer calls are left."""

    @app.webhooks.post("webhook.delivery_failing", summary="A subscriber's deliveries fail")
    def delivery_failing(body: DeliveryFailingEvent) -> None:
        """Sent once when WEBHOOK_FAILING_AFTER deliveries in a row failed, again only after a
        delivery succeeded in between."""
