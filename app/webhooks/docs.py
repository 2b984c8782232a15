"""The events partnergate sends, documented in the OpenAPI document's `webhooks` section.

Every delivery is a Standard Webhooks POST (`webhook-id`, `webhook-timestamp`,
`webhook-signature` signed with the subscriber's secret) whose JSON body is
`{"type", "timestamp", "data"}`; `data` differs by type, as below. This is the one description
of them: `app.openapi` only makes the rest of the document as precise.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header
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
    timestamp: datetime = Field(description="when the change happened (UTC)")


class StatusChangedEvent(_Envelope):
    type: Literal["client.status_changed"]
    data: StatusChanged


class ProvisioningFinishedEvent(_Envelope):
    type: Literal["provisioning.finished"]
    data: ProvisioningFinished


class DemotionsHeldEvent(_Envelope):
    type: Literal["audit.demotions_held"]
    data: DemotionsHeld


class NeedsAttentionEvent(_Envelope):
    type: Literal["provisioning.needs_attention"]
    data: NeedsAttention


class QuotaLowEvent(_Envelope):
    type: Literal["ctct.quota_low"]
    data: QuotaLow


class DeliveryFailingEvent(_Envelope):
    type: Literal["webhook.delivery_failing"]
    data: DeliveryFailing


_SIGNED = (
    "Signed per Standard Webhooks with the subscriber's secret: check `webhook-signature` over "
    "`webhook-id`, `webhook-timestamp` and the raw body. `webhook-id` is the same for every "
    "retry and redelivery: deduplicate by it."
)
_ACKNOWLEDGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "any 2xx acknowledges; anything else is retried"}
}
WebhookId = Annotated[
    str, Header(alias="webhook-id", max_length=64, description="the event id, e.g. msg_...")
]
WebhookTimestamp = Annotated[
    int, Header(alias="webhook-timestamp", description="unix seconds of this attempt")
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        max_length=1024,
        description="`v1,<base64 HMAC-SHA256>`, space-separated when two secrets sign",
    ),
]


def document_events(app: FastAPI) -> None:
    """Add every event type to `app.webhooks` (the OpenAPI document's `webhooks`)."""
    event = app.webhooks.post

    @event(
        "client.status_changed",
        summary="A client's status changed",
        **_doc("Every status change, with whether the account may use the integration now."),
    )
    def status_changed(
        body: StatusChangedEvent, id_: WebhookId, at: WebhookTimestamp, sig: WebhookSignature
    ) -> None:
        pass

    @event(
        "provisioning.finished",
        summary="A provisioning request ended",
        **_doc("A create call reached its end: succeeded, failed or needs_attention."),
    )
    def provisioning_finished(
        body: ProvisioningFinishedEvent,
        id_: WebhookId,
        at: WebhookTimestamp,
        sig: WebhookSignature,
    ) -> None:
        pass

    @event(
        "audit.demotions_held",
        summary="An audit holds demotions for a person",
        **_doc("More than AUDIT_MAX_DEMOTION_RATIO of approved clients would be demoted."),
    )
    def demotions_held(
        body: DemotionsHeldEvent, id_: WebhookId, at: WebhookTimestamp, sig: WebhookSignature
    ) -> None:
        pass

    @event(
        "provisioning.needs_attention",
        summary="A provisioning request needs a person",
        **_doc("Only a person can tell whether the account exists; check, then retry."),
    )
    def needs_attention(
        body: NeedsAttentionEvent, id_: WebhookId, at: WebhookTimestamp, sig: WebhookSignature
    ) -> None:
        pass

    @event(
        "ctct.quota_low",
        summary="Today's CTCT calls run low",
        **_doc("Sent once per UTC day when CTCT_QUOTA_LOW_THRESHOLD or fewer calls are left."),
    )
    def quota_low(
        body: QuotaLowEvent, id_: WebhookId, at: WebhookTimestamp, sig: WebhookSignature
    ) -> None:
        pass

    @event(
        "webhook.delivery_failing",
        summary="A subscriber's deliveries fail",
        **_doc(
            "Sent once when WEBHOOK_FAILING_AFTER deliveries in a row failed, again only after "
            "a delivery succeeded in between."
        ),
    )
    def delivery_failing(
        body: DeliveryFailingEvent, id_: WebhookId, at: WebhookTimestamp, sig: WebhookSignature
    ) -> None:
        pass


def _doc(what: str) -> dict[str, Any]:
    """An event's description (what, then how it is signed) and its acknowledgement."""
    return {"description": f"{what}\n\n{_SIGNED}", "responses": _ACKNOWLEDGE}
