"""`/v1/webhook-subscribers`: who receives which events, each with its own secret."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import CursorsDep, DeciderDep, SessionDep, StateDep
from app.errors import Responses
from app.kit.inputs import RowId
from app.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from app.webhooks import subscribers
from app.webhooks.models import SubscriberSource
from app.webhooks.schemas import NewSubscriber, SubscriberOut, SubscriberWithSecret

router = APIRouter(prefix="/v1/webhook-subscribers", tags=["webhooks"])
_NONE: Responses = {404: {"description": "no such live subscriber"}}


def _with_secret(created: subscribers.WithSecret) -> SubscriberWithSecret:
    out = SubscriberOut.model_validate(created.subscriber)
    return SubscriberWithSecret(**out.model_dump(), secret=created.secret)


@router.get("", response_model=Page[SubscriberOut], summary="Webhook subscribers, oldest first")
async def list_subscribers(
    *,
    _: DeciderDep,
    session: SessionDep,
    cursors: CursorsDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[SubscriberOut]:
    return await subscribers.page(session, cursors, cursor=cursor, limit=limit)


@router.post(
    "",
    status_code=201,
    response_model=SubscriberWithSecret,
    summary="Add a subscriber; its secret is in this response only",
    responses={409: {"description": "a live subscriber already has this name or URL"}},
)
async def add_subscriber(
    body: NewSubscriber, principal: DeciderDep, session: SessionDep, state: StateDep
) -> SubscriberWithSecret:
    created = await subscribers.create(
        session,
        state.password_cipher,
        name=body.name,
        url=body.url,
        event_types=body.event_types,
        source=SubscriberSource.API,
        created_by=principal.name,
    )
    return _with_secret(created)


@router.get(
    "/{subscriber_id}", response_model=SubscriberOut, summary="One subscriber", responses=_NONE
)
async def get_subscriber(subscriber_id: RowId, _: DeciderDep, session: SessionDep) -> SubscriberOut:
    return SubscriberOut.model_validate(await subscribers.get(session, subscriber_id))


@router.delete(
    "/{subscriber_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a subscriber; its pending deliveries fail",
    responses=_NONE,
)
async def remove_subscriber(
    subscriber_id: RowId, principal: DeciderDep, session: SessionDep
) -> None:
    await subscribers.remove(session, subscriber_id, by=principal.name)


@router.post(
    "/{subscriber_id}/secret",
    response_model=SubscriberWithSecret,
    summary="Rotate a subscriber's secret; the old one also signs for the grace period",
    responses=_NONE,
)
async def rotate_secret(
    subscriber_id: RowId, principal: DeciderDep, session: SessionDep, state: StateDep
) -> SubscriberWithSecret:
    rotated = await subscribers.rotate(
        session,
        state.password_cipher,
        subscriber_id,
        by=principal.name,
        grace=state.settings.webhook.secret_rotation_grace,
    )
    return _with_secret(rotated)
