"""`/v1/webhook-deliveries`: what was sent to the product's webhook URLs, and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import CursorsDep, DeciderDep, ReaderDep, SessionDep
from app.kit.inputs import RowId
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from app.webhooks import service
from app.webhooks.models import DeliveryState, EventType
from app.webhooks.schemas import WebhookDeliveryOut

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
