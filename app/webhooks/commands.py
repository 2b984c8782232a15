"""`partnergate subscribers list|add|remove|rotate`: webhook subscribers from the shell.

The same service as `/v1/webhook-subscribers`; a secret is printed once, when a subscriber is
added or its secret rotated. Subscribers are named on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, create_sessionmaker
from app.settings import Settings
from app.webhooks import subscribers
from app.webhooks.models import SubscriberSource, WebhookSubscriber
from app.webhooks.schemas import check_event_types, check_url

T = TypeVar("T")
BoxFactory = Callable[[Settings], subscribers.SecretBox]


def _in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def runner() -> T:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _show_secret(created: subscribers.WithSecret) -> None:
    print(f"subscriber {created.subscriber.name!r} (id {created.subscriber.id}) signs with:")
    print(created.secret)
    print("Store it now: it is not shown again.", file=sys.stderr)


def _list(args: argparse.Namespace, url: str) -> int:
    async def work(session: AsyncSession) -> list[WebhookSubscriber]:
        rows: list[WebhookSubscriber] = []
        after: int | None = None
        while batch := await subscribers.live_batch(session, after_id=after):
            rows.extend(batch)
            after = batch[-1].id
        return rows

    print(f"{'ID':>5} {'NAME':24} {'EVENT TYPES':44} {'FAILING':8} URL")
    for row in _in_session(url, work):
        failing = "yes" if row.failing_since is not None else "-"
        print(f"{row.id:>5} {row.name:24} {','.join(row.event_types):44} {failing:8} {row.url}")
    return 0


def _add(args: argparse.Namespace, url: str, box: subscribers.SecretBox) -> int:
    events = [part.strip() for part in args.events.split(",") if part.strip()]
    created = _in_session(
        url,
        lambda session: subscribers.create(
            session,
            box,
            name=args.name,
            url=check_url(args.url),
            event_types=check_event_types(events or ["*"]),
            source=SubscriberSource.CLI,
            created_by=_actor(),
        ),
    )
    _show_secret(created)
    return 0


def _remove(args: argparse.Namespace, url: str) -> int:
    async def work(session: AsyncSession) -> WebhookSubscriber:
        found = await subscribers.named(session, args.name)
        return await subscribers.remove(session, found.id, by=_actor())

    removed = _in_session(url, work)
    print(f"subscriber {removed.name!r} removed")
    return 0


def _rotate(
    args: argparse.Namespace, url: str, box: subscribers.SecretBox, settings: Settings
) -> int:
    async def work(session: AsyncSession) -> subscribers.WithSecret:
        found = await subscribers.named(session, args.name)
        return await subscribers.rotate(
            session, box, found.id, by=_actor(), grace=settings.webhook.secret_rotation_grace
        )

    _show_secret(_in_session(url, work))
    return 0


def register(commands: Any, with_database: Callable[..., Any], box: BoxFactory) -> None:
    """Add `subscribers …` to the `partnergate` parser."""
    parser = commands.add_parser("subscribers", help="who receives which webhook events")
    verbs = parser.add_subparsers(dest="subscribers_command", required=True)

    def add_with_box(args: argparse.Namespace, url: str) -> int:
        return _add(args, url, box(Settings()))

    def rotate_with_box(args: argparse.Namespace, url: str) -> int:
        settings = Settings()
        return _rotate(args, url, box(settings), settings)

    verbs.add_parser("list", help="live subscribers").set_defaults(handler=with_database(_list))
    add = verbs.add_parser("add", help="add a subscriber and print its secret once")
    add.add_argument("--name", required=True)
    add.add_argument("--url", required=True, help="where events are POSTed (http or https)")
    add.add_argument(
        "--events", default="*", help="comma-separated event types, or * for every type"
    )
    add.set_defaults(handler=with_database(add_with_box))
    remove = verbs.add_parser("remove", help="remove a subscriber; its pending deliveries fail")
    remove.add_argument("--name", required=True)
    remove.set_defaults(handler=with_database(_remove))
    rotate = verbs.add_parser("rotate", help="a new secret (the old one signs too for a while)")
    rotate.add_argument("--name", required=True)
    rotate.set_defaults(handler=with_database(rotate_with_box))
