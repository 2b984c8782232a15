"""`partnergate ctct webhooks list|subscribe|unsubscribe|test`: CTCT's partner webhook
subscriptions, through CTCT's own endpoints (`app.ctct.partner_webhooks`).

Each command builds a CTCT client of its own (its calls go through the shared budget in the
database) and prints one line per topic. Without `--topic`, `subscribe` and `unsubscribe` cover
every topic, and `test` every subscribed one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.ctct.client import build_ctct_client
from app.ctct.errors import CtctError, CtctNotFound
from app.ctct.partner_webhooks import TOPICS, PartnerWebhooks
from app.ctct.schemas import WebhookSubscription
from app.db import create_engine
from app.settings import Settings

T = TypeVar("T")


def _run(settings: Settings, url: str, work: Callable[[PartnerWebhooks], Awaitable[T]]) -> T:
    async def runner() -> T:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        client = build_ctct_client(settings.ctct, engine=engine)
        try:
            return await work(PartnerWebhooks(client))
        finally:
            await client.aclose()
            await engine.dispose()

    return asyncio.run(runner())


def _line(subscription: WebhookSubscription) -> str:
    name = subscription.topic_name or TOPICS.get(subscription.topic_id, "")
    return f"{subscription.topic_id:<6} {name:28} {subscription.hook_uri or '-'}"


def _topics(args: argparse.Namespace) -> list[int]:
    return sorted(set(args.topic)) if args.topic else sorted(TOPICS)


def _list(args: argparse.Namespace, settings: Settings, url: str) -> int:
    subscriptions = _run(settings, url, lambda hooks: hooks.list())
    print(f"{'TOPIC':6} {'NAME':28} HOOK URI")
    for subscription in subscriptions:
        print(_line(subscription))
    if not subscriptions:
        print("(no subscriptions)", file=sys.stderr)
    return 0


def _subscribe(args: argparse.Namespace, settings: Settings, url: str) -> int:
    async def work(hooks: PartnerWebhooks) -> list[WebhookSubscription]:
        return [await hooks.subscribe(topic, args.url) for topic in _topics(args)]

    for subscription in _run(settings, url, work):
        print(f"subscribed {_line(subscription)}")
    return 0


def _unsubscribe(args: argparse.Namespace, settings: Settings, url: str) -> int:
    async def work(hooks: PartnerWebhooks) -> list[tuple[int, bool]]:
        done = []
        for topic in _topics(args):
            try:
                await hooks.unsubscribe(topic)
            except CtctNotFound:
                done.append((topic, False))
            else:
                done.append((topic, True))
        return done

    for topic, removed in _run(settings, url, work):
        state = "unsubscribed" if removed else "was not subscribed:"
        print(f"{state} {topic} {TOPICS.get(topic, '')}")
    return 0


def _test(args: argparse.Namespace, settings: Settings, url: str) -> int:
    async def work(hooks: PartnerWebhooks) -> list[WebhookSubscription]:
        topics = args.topic or [subscription.topic_id for subscription in await hooks.list()]
        return [await hooks.test(topic) for topic in sorted(set(topics))]

    sent = _run(settings, url, work)
    for subscription in sent:
        print(f"test notification sent {_line(subscription)}")
    if not sent:
        print("no subscriptions to test", file=sys.stderr)
        return 1
    return 0


def _guarded(
    command: Callable[[argparse.Namespace, Settings, str], int],
) -> Callable[[argparse.Namespace, str], int]:
    def run(args: argparse.Namespace, url: str) -> int:
        try:
            return command(args, Settings(), url)
        except CtctError as exc:
            print(f"partnergate: CTCT answered {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1

    return run


def register(commands: Any, with_database: Callable[..., Any]) -> None:
    """Add `ctct webhooks …` to the `partnergate` parser."""
    ctct = commands.add_parser("ctct", help="CTCT's own partner settings").add_subparsers(
        dest="ctct_command", required=True
    )
    hooks = ctct.add_parser("webhooks", help="CTCT's partner webhook subscriptions").add_subparsers(
        dest="webhooks_command", required=True
    )
    topic = {
        "type": int,
        "action": "append",
        "choices": sorted(TOPICS),
        "help": "1 tier upgrade, 2 tier downgrade, 3 cancelled, 4 disabled (repeatable)",
    }

    hooks.add_parser("list", help="topics we are subscribed to").set_defaults(
        handler=with_database(_guarded(_list))
    )
    subscribe = hooks.add_parser("subscribe", help="send a topic's notifications to URL")
    subscribe.add_argument("url", help="the callback, e.g. https://…/v1/ctct/webhooks")
    subscribe.add_argument("--topic", **topic)
    subscribe.set_defaults(handler=with_database(_guarded(_subscribe)))
    unsubscribe = hooks.add_parser("unsubscribe", help="stop a topic's notifications")
    unsubscribe.add_argument("--topic", **topic)
    unsubscribe.set_defaults(handler=with_database(_guarded(_unsubscribe)))
    test = hooks.add_parser("test", help="make CTCT send a sample notification")
    test.add_argument("--topic", **topic)
    test.set_defaults(handler=with_database(_guarded(_test)))
