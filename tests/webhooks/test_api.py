"""`GET /v1/webhook-deliveries`: `{items, next_cursor}` pages, newest first, signed cursors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.settings import WebhookSettings
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType
from tests.conftest import ApiKeyFactory

RECEIVER = WebhookSettings(urls=["http://receiver.test/hook"], secret="whsec_x")
URL = "/v1/webhook-deliveries"


@pytest.fixture
async def reader(api_key: ApiKeyFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}


async def _deliveries(
    sessionmaker: async_sessionmaker[AsyncSession], count: int, event_type: EventType
) -> list[int]:
    ids = []
    for number in range(count):
        async with sessionmaker() as session, session.begin():
            event = await webhooks_service.emit(session, event_type, {"n": number})
            (delivery,) = await webhooks_service.fan_out(session, event.event_id, RECEIVER)
            ids.append(delivery.id)
    return ids


async def _walk(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(URL, params=query, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


async def test_walking_the_deliveries_visits_each_once_newest_first_with_no_empty_last_page(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: dict[str, str],
) -> None:
    ids = await _deliveries(sessionmaker, 7, EventType.CLIENT_STATUS_CHANGED)

    pages = await _walk(client, reader, limit=3)

    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    assert [item["id"] for page in pages for item in page["items"]] == sorted(ids, reverse=True)


async def test_a_page_exactly_at_the_end_says_so(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: dict[str, str],
) -> None:
    await _deliveries(sessionmaker, 4, EventType.CLIENT_STATUS_CHANGED)

    pages = await _walk(client, reader, limit=2)

    assert [len(page["items"]) for page in pages] == [2, 2]
    assert (await _walk(client, reader))[0]["next_cursor"] is None


async def test_a_filtered_walk_keeps_its_filter_and_refuses_another_listings_cursor(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: dict[str, str],
) -> None:
    finished = await _deliveries(sessionmaker, 3, EventType.PROVISIONING_FINISHED)
    await _deliveries(sessionmaker, 3, EventType.CLIENT_STATUS_CHANGED)
    params = {"event_type": "provisioning.finished", "limit": 2}

    pages = await _walk(client, reader, **params)
    walked = [item["id"] for page in pages for item in page["items"]]
    first = await client.get(URL, params=params, headers=reader)
    foreign = await client.get(
        URL, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=reader
    )
    forged = await client.get(URL, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=reader)

    assert walked == sorted(finished, reverse=True)
    for refused in (foreign, forged):
        assert refused.status_code == 400
        assert [error["field"] for error in refused.json()["errors"]] == ["cursor"]


async def test_the_limit_has_the_one_maximum(
    client: httpx.AsyncClient, reader: dict[str, str]
) -> None:
    assert (await client.get(URL, params={"limit": 500}, headers=reader)).status_code == 200
    assert (await client.get(URL, params={"limit": 501}, headers=reader)).status_code == 400
