"""`/v1/webhook-deliveries`: what was sent to the product's webhook URLs, and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import DeciderDep, ReaderDep, SessionDep
from app.events import repository, service
from app.events.models import DeliveryState, EventType
from app.events.schemas import WebhookDeliveryOut, WebhookDeliveryPage

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["events"])


@router.get("", response_model=WebhookDeliveryPage, summary="Webhook deliveries, newest first")
async def list_deliveries(
    _: ReaderDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(description="cursor: deliveries older than this id")
    ] = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    event_type: Annotated[EventType | None, Query()] = None,
) -> WebhookDeliveryPage:
    rows = await repository.page(
        session,
        limit=limit,
        before_id=before,
        state=state.value if state else None,
        event_type=event_type.value if event_type else None,
    )
    items = [WebhookDeliveryOut.model_validate(row) for row in rows]
    return WebhookDeliveryPage(
        items=items, next_before=items[-1].id if len(items) == limit else None
    )


@router.post(
    "/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryOut,
    summary="Send a delivery again (same webhook-id)",
)
async def redeliver(
    delivery_id: int, principal: DeciderDep, session: SessionDep
) -> WebhookDeliveryOut:
    delivery = await service.redeliver(session, delivery_id, by=principal.name)
    return WebhookDeliveryOut.model_validate(delivery)
