"""`/v1/webhook-deliveries`: what was sent to the product's webhook URLs, and redelivery; and
`outgoing`, the events themselves, documented in the OpenAPI document's `webhooks` section."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from app.deps import CursorsDep, DeciderDep, ReaderDep, SessionDep
from app.errors import Responses
from app.kit.inputs import RowId
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from app.webhooks import service
from app.webhooks.models import DeliveryState, EventType
from app.webhooks.schemas import (
    ClientStatusChangedEvent,
    ProvisioningFinishedEvent,
    WebhookDeliveryOut,
)

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhooks"])


@router.get("", response_model=Page[WebhookDeliveryOut], summary="Webhook deliveries, newest first")
async def list_deliveries(
    *,
    _: ReaderDep,
    session: SessionDep,
    cursors: CursorsDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    event_type: Annotated[EventType | None, Query()] = None,
) -> Page[WebhookDeliveryOut]:
    return await service.deliveries(
        session, cursors, limit=limit, cursor=cursor, state=state, event_type=event_type
    )


@router.post(
    "/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryOut,
    summary="Send a delivery again (same webhook-id)",
    responses={404: {"description": "no such delivery"}},
)
async def redeliver(
    delivery_id: RowId, principal: DeciderDep, session: SessionDep
) -> WebhookDeliveryOut:
    delivery = await service.redeliver(session, delivery_id, by=principal.name)
    return WebhookDeliveryOut.model_validate(delivery)


outgoing = APIRouter(tags=["webhooks"])
"""What partnergate POSTs to each `WEBHOOK_URLS` receiver (include in `app.webhooks`)."""

_SIGNED = (
    "Signed per Standard Webhooks with `WEBHOOK_SECRET`: check `webhook-signature` over "
    "`webhook-id`, `webhook-timestamp` and the raw body. `webhook-id` is the same for every "
    "retry and redelivery: deduplicate by it."
)
_ACKNOWLEDGE: Responses = {200: {"description": "any 2xx acknowledges; anything else is retried"}}
WebhookId = Annotated[str, Header(alias="webhook-id", description="the event id, e.g. msg_...")]
WebhookTimestamp = Annotated[
    int, Header(alias="webhook-timestamp", description="unix seconds of this attempt")
]
WebhookSignature = Annotated[
    str, Header(alias="webhook-signature", description="`v1,<base64 HMAC-SHA256>`")
]


@outgoing.post(EventType.CLIENT_STATUS_CHANGED.value, description=_SIGNED, responses=_ACKNOWLEDGE)
async def client_status_changed(
    event: ClientStatusChangedEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """A client's status changed (every change, from any source)."""


@outgoing.post(EventType.PROVISIONING_FINISHED.value, description=_SIGNED, responses=_ACKNOWLEDGE)
async def provisioning_finished(
    event: ProvisioningFinishedEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """A provisioning request ended: succeeded, failed or needs attention."""
