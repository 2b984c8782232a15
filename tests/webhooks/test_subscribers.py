"""Subscribers: managed through the API, each with its own rotatable secret and the event types it
wants; events go only to the subscribers that asked for their type; WEBHOOK_URLS seeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership
from app.clients.models import EventSource, VerifiedVia
from app.kit.crypto import PasswordCipher
from app.settings import Settings, UnaffiliatedAccess, WebhookSettings
from app.webhooks import delivery_flow, subscribers
from app.webhooks import service as webhooks_service
from app.webhooks.models import EventType, SubscriberSource, WebhookDelivery, WebhookEvent
from app.worker.webhook_jobs import payload_completer
from tests.clients.support import assert_problem
from tests.conftest import TEST_FERNET_KEY, ApiKeyFactory, Headers, build_settings
from tests.webhooks.receiver import Receiver, running_receiver

URL = "/v1/webhook-subscribers"
NO_ENV = WebhookSettings()
BOX = PasswordCipher([SecretStr(TEST_FERNET_KEY)])


@pytest.fixture
async def decider(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_DECIDE, name='ops-bob')}"}


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with running_receiver(receiver) as url:
        yield url


async def _add(
    session: AsyncSession, name: str, event_types: list[str], url: str | None = None
) -> subscribers.WithSecret:
    return await subscribers.create(
        session,
        BOX,
        name=name,
        url=url or f"http://{name}.test/hook",
        event_types=event_types,
        source=SubscriberSource.CLI,
        created_by="test",
    )


async def _emit_and_fan_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    event_type: EventType,
    settings: WebhookSettings = NO_ENV,
    data: dict[str, Any] | None = None,
) -> list[WebhookDelivery]:
    async with sessionmaker() as session, session.begin():
        event = await webhooks_service.emit(session, event_type, data or {"n": 1})
    async with sessionmaker() as session, session.begin():
        return await webhooks_service.fan_out(session, event.event_id, settings)


async def test_each_event_type_goes_only_to_the_subscribers_that_asked_for_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await _add(session, "product", ["client.status_changed"])
        await _add(session, "oncall", ["audit.demotions_held", "ctct.quota_low"])
        await _add(session, "pager", ["provisioning.needs_attention", "webhook.delivery_failing"])
        await _add(session, "archive", ["*"])
        removed = await _add(session, "removed", ["*"])
        await subscribers.remove(session, removed.subscriber.id, by="test")

    received: dict[str, list[str]] = {}
    for event_type in EventType:
        deliveries = await _emit_and_fan_out(sessionmaker, event_type)
        async with sessionmaker() as session:
            names = [
                (await subscribers.get(session, d.subscriber_id or 0)).name for d in deliveries
            ]
        received[event_type.value] = names

    assert received == {
        "client.status_changed": ["product", "archive"],
        "provisioning.finished": ["archive"],
        "audit.demotions_held": ["oncall", "archive"],
        "provisioning.needs_attention": ["pager", "archive"],
        "ctct.quota_low": ["oncall", "archive"],
        "webhook.delivery_failing": ["pager", "archive"],
    }


async def test_the_api_adds_lists_rotates_and_removes_subscribers_showing_a_secret_once(
    client: httpx.AsyncClient, decider: Headers, api_key: ApiKeyFactory
) -> None:
    body = {"name": "ops-hooks", "url": "https://ops.example/hooks", "event_types": ["*"]}
    created = await client.post(URL, json=body, headers=decider)
    assert created.status_code == 201, created.text
    subscriber = created.json()
    assert subscriber["secret"].startswith("whsec_")
    assert (subscriber["created_by"], subscriber["source"]) == ("ops-bob", "api")

    listed = (await client.get(URL, headers=decider)).json()
    assert [item["name"] for item in listed["items"]] == ["ops-hooks"]
    assert "secret" not in listed["items"][0]
    assert subscriber["secret"] not in str(listed)

    rotated = await client.post(f"{URL}/{subscriber['id']}/secret", headers=decider)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != subscriber["secret"]
    assert rotated.json()["previous_secret_until"] is not None

    duplicate = await client.post(URL, json={**body, "url": "https://x.example"}, headers=decider)
    assert_problem(duplicate, 409)
    removed = await client.delete(f"{URL}/{subscriber['id']}", headers=decider)
    assert removed.status_code == 204
    assert_problem(await client.get(f"{URL}/{subscriber['id']}", headers=decider), 404)
    again = await client.post(URL, json=body, headers=decider)
    assert again.status_code == 201, again.text

    reader = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_READ)}"}
    assert_problem(await client.get(URL, headers=reader), 403)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://ops.example/hooks"}, "url"),
        ({"url": "https://user:pw@ops.example/hooks"}, "url"),
        ({"event_types": ["client.deleted"]}, "event_types"),
        ({"event_types": []}, "event_types"),
        ({"name": "has space"}, "name"),
    ],
    ids=["scheme", "credentials", "unknown-type", "no-types", "name"],
)
async def test_a_bad_subscriber_is_a_400_problem(
    client: httpx.AsyncClient, decider: Headers, change: dict[str, object], field: str
) -> None:
    body = {"name": "ops", "url": "https://ops.example/hooks", "event_types": ["*"], **change}
    response = await client.post(URL, json=body, headers=decider)
    assert_problem(response, 400)
    assert any(field in error["field"] for error in response.json()["errors"])


async def test_deliveries_are_signed_with_the_subscribers_own_secret_and_both_after_rotation(
    sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, hook_url: str
) -> None:
    async with sessionmaker() as session, session.begin():
        first = await _add(session, "product", ["*"], url=hook_url)
    settings = WebhookSettings(secret_rotation_grace="1h")  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        (delivery,) = await _emit_and_fan_out(sessionmaker, EventType.PROVISIONING_FINISHED)
        state = await delivery_flow.attempt(sessionmaker, http, settings, delivery.id, box=BOX)
        assert state == "delivered"
        async with sessionmaker() as session, session.begin():
            second = await subscribers.rotate(
                session, BOX, first.subscriber.id, by="test", grace=settings.secret_rotation_grace
            )
        (later,) = await _emit_and_fan_out(sessionmaker, EventType.PROVISIONING_FINISHED)
        assert await delivery_flow.attempt(sessionmaker, http, settings, later.id, box=BOX)

    before, after = receiver.received
    Webhook(first.secret).verify(before.body, before.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(second.secret).verify(before.body, before.headers)
    Webhook(first.secret).verify(after.body, after.headers)
    Webhook(second.secret).verify(after.body, after.headers)


async def test_webhook_urls_seed_subscribers_once_and_a_removed_seed_stays_removed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    env = WebhookSettings(urls=["http://a.test/hook", "http://b.test/hook"], secret="whsec_x")
    first = await _emit_and_fan_out(sessionmaker, EventType.CTCT_QUOTA_LOW, env)
    assert [d.url for d in first] == env.urls
    async with sessionmaker() as session, session.begin():
        seeded = await subscribers.get(session, first[0].subscriber_id or 0)
        assert (seeded.source, seeded.event_types) == ("env", ["*"])
        await subscribers.remove(session, seeded.id, by="test")

    second = await _emit_and_fan_out(sessionmaker, EventType.CTCT_QUOTA_LOW, env)

    assert [d.url for d in second] == ["http://b.test/hook"]
    unsigned = await _emit_and_fan_out(
        sessionmaker, EventType.CTCT_QUOTA_LOW, WebhookSettings(urls=env.urls)
    )
    assert unsigned == []  # without WEBHOOK_SECRET a seeded subscriber cannot sign


@pytest.mark.parametrize(
    ("policy", "allowed"), [(UnaffiliatedAccess.DENY, False), (UnaffiliatedAccess.ALLOW, True)]
)
async def test_client_status_changed_carries_allowed(
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    policy: UnaffiliatedAccess,
    allowed: bool,
) -> None:
    settings: Settings = build_settings(database_url, unaffiliated_access=policy.value)
    async with sessionmaker() as session, session.begin():
        await _add(session, "product", ["client.status_changed"])
        await clients_service.record_evidence(
            session,
            "a0allowed001",
            Evidence(Membership.NO_PARTNER, VerifiedVia.ACCOUNT_SUMMARY, "summary_no_partner"),
            clients_service.Actor(EventSource.PROBE, name="test"),
        )
    async with sessionmaker() as session:
        event = (await session.execute(select(WebhookEvent))).scalar_one()
    async with sessionmaker() as session, session.begin():
        (delivery,) = await webhooks_service.fan_out(
            session, event.event_id, settings.webhook, complete=payload_completer(settings)
        )

    data = delivery.payload["data"]
    assert (data["to_status"], data["allowed"]) == ("unaffiliated", allowed)


async def test_a_seeded_subscriber_rotated_keeps_signing_with_webhook_secret_for_the_grace(
    sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, hook_url: str
) -> None:
    env_secret = subscribers.new_secret()
    env = WebhookSettings(urls=[hook_url], secret=env_secret, secret_rotation_grace="1h")  # type: ignore[arg-type]
    (seeded,) = await _emit_and_fan_out(sessionmaker, EventType.CTCT_QUOTA_LOW, env)
    async with sessionmaker() as session, session.begin():
        rotated = await subscribers.rotate(
            session, BOX, seeded.subscriber_id or 0, by="test", grace=env.secret_rotation_grace
        )
    (later,) = await _emit_and_fan_out(sessionmaker, EventType.CTCT_QUOTA_LOW, env)
    async with httpx.AsyncClient() as http:
        assert await delivery_flow.attempt(sessionmaker, http, env, later.id, box=BOX)

    [notice] = receiver.received
    Webhook(env_secret).verify(notice.body, notice.headers)
    Webhook(rotated.secret).verify(notice.body, notice.headers)
