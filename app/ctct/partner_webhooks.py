"""CTCT's partner webhook subscriptions (`/partner/webhooks/subscriptions`, NOTES §2.9-2.13).

A subscription ties a topic to the URI CTCT POSTs its notifications to: subscribing (`PUT`) also
updates the URI; `POST …/tests` makes CTCT send a sample notification. Our receiver is
`POST /v1/ctct/webhooks` (`app.membership.webhook_router`). Calls are interactive (an operator
waits) and go through the shared budget like every CTCT call.
"""

from __future__ import annotations

import httpx
from pydantic import TypeAdapter, ValidationError

from app.ctct.call_sender import CtctCall
from app.ctct.client import CtctClient, json_body
from app.ctct.errors import CtctServerError
from app.ctct.schemas import WebhookSubscription

PATH = "/partner/webhooks/subscriptions"
TOPICS: dict[int, str] = {
    1: "Billing tier upgrade",
    2: "Billing tier downgrade",
    3: "Account cancelled",
    4: "Account disabled",
}
_LIST = TypeAdapter(list[WebhookSubscription])


def _subscription(response: httpx.Response, call: CtctCall) -> WebhookSubscription:
    try:
        return WebhookSubscription.model_validate(json_body(response, call))
    except ValidationError as exc:
        raise CtctServerError(
            "CTCT answered with an unexpected subscription body",
            status=response.status_code,
            operation=call.operation,
        ) from exc


class PartnerWebhooks:
    """List, subscribe, unsubscribe and test CTCT's partner webhook topics."""

    def __init__(self, ctct: CtctClient) -> None:
        self._ctct = ctct

    def _topic_url(self, topic_id: int, suffix: str = "") -> str:
        return self._ctct.url(f"{PATH}/{int(topic_id)}{suffix}")

    async def list(self) -> list[WebhookSubscription]:
        """`GET …/subscriptions`: every topic we are subscribed to."""
        call = CtctCall("list_webhook_subscriptions", "GET", self._ctct.url(PATH))
        response = await self._ctct.send(call, retry=True)
        try:
            return _LIST.validate_python(json_body(response, call))
        except ValidationError as exc:
            raise CtctServerError(
                "CTCT answered with an unexpected subscription list",
                status=response.status_code,
                operation=call.operation,
            ) from exc

    async def get(self, topic_id: int) -> WebhookSubscription:
        """`GET …/{topic_id}`: one subscription (`CtctNotFound` when not subscribed)."""
        call = CtctCall("get_webhook_subscription", "GET", self._topic_url(topic_id))
        return _subscription(await self._ctct.send(call, retry=True), call)

    async def subscribe(self, topic_id: int, hook_uri: str) -> WebhookSubscription:
        """`PUT …/{topic_id}` with the callback URI: subscribes, or moves the URI (idempotent)."""
        call = CtctCall(
            "subscribe_webhook", "PUT", self._topic_url(topic_id), json={"hook_uri": hook_uri}
        )
        return _subscription(await self._ctct.send(call, retry=True), call)

    async def unsubscribe(self, topic_id: int) -> None:
        """`DELETE …/{topic_id}` (204)."""
        call = CtctCall("unsubscribe_webhook", "DELETE", self._topic_url(topic_id))
        await self._ctct.send(call, retry=True)

    async def test(self, topic_id: int) -> WebhookSubscription:
        """`POST …/{topic_id}/tests`: CTCT sends a sample notification to the hook (not retried)."""
        call = CtctCall("test_webhook", "POST", self._topic_url(topic_id, "/tests"))
        return _subscription(await self._ctct.send(call, retry=False), call)
