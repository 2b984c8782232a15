"""Every event type sent is documented in the OpenAPI `webhooks` section, with the payload the
code really sends."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.webhooks import docs, operations
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType, WebhookEvent

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def test_every_event_type_is_in_the_openapi_webhooks_section(app: FastAPI) -> None:
    documented = app.openapi()["webhooks"]
    assert set(documented) == {event_type.value for event_type in EventType}


async def test_the_documented_payloads_are_the_ones_sent(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        change = webhooks_service.status_change(
            encoded_account_id="a0docs000001",
            from_status=None,
            to_status="approved",
            reason="in_partner_list",
            source="import",
            actor="ops",
            status_event_id=1,
            audit_run_id=None,
        )
        await webhooks_service.status_changed(session, change)
        await webhooks_service.statuses_changed(session, [change | {"audit_run_id": 7}])
        await webhooks_service.provisioning_finished(
            session, provisioning_request_id=1, state="failed", encoded_account_id=None, error="x"
        )
        await operations.demotions_held(session, audit_run_id=1, held=3, approved=9, max_ratio=0.1)
        await operations.provisioning_needs_attention(
            session,
            provisioning_request_id=1,
            api_key_name="backend",
            login_name="jack",
            encoded_account_id=None,
            attempts=2,
            error="x",
        )
        await operations.quota_low(
            session, day=date(2026, 12, 10), used=9, daily_quota=10, threshold=1, resets_at=NOW
        )
        await operations.delivery_failing(
            session,
            subscriber_id=1,
            subscriber_name="pager",
            url="https://pager.example",
            consecutive_failures=5,
            since=NOW,
            delivery_id=1,
            event_id="msg_x",
            event_type="ctct.quota_low",
            last_status_code=503,
            last_error=None,
        )
    async with sessionmaker() as session:
        events = (await session.execute(select(WebhookEvent).order_by(WebhookEvent.id))).scalars()
        sent = {event.event_type: event.payload for event in events}
    models: dict[str, type[BaseModel]] = {
        "client.status_changed": docs.StatusChangedEvent,
        "provisioning.finished": docs.ProvisioningFinishedEvent,
        "audit.demotions_held": docs.DemotionsHeldEvent,
        "provisioning.needs_attention": docs.NeedsAttentionEvent,
        "ctct.quota_low": docs.QuotaLowEvent,
        "webhook.delivery_failing": docs.DeliveryFailingEvent,
    }
    for event_type, model in models.items():
        payload = dict(sent[event_type])
        if event_type == "client.status_changed":  # `allowed` is added at fan-out
            payload["data"] = {**payload["data"], "allowed": True}
        model.model_validate(payload)
        data_model = model.model_fields["data"].annotation
        assert isinstance(data_model, type)
        assert issubclass(data_model, BaseModel)
        assert set(payload["data"]) == set(data_model.model_fields), event_type
