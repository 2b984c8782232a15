"""0009: deliveries recorded before events were rows get theirs; waiting jobs keep running."""

from __future__ import annotations

from typing import Any

import psycopg

from app.db import libpq_url
from app.migrate import downgrade, upgrade


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def test_existing_deliveries_get_their_events_and_waiting_jobs_their_new_names(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    upgrade(url, "0008_webhook_delivery")
    _execute(
        url,
        "INSERT INTO webhook_delivery (event_id, event_type, url, payload, state, attempts) "
        "VALUES ('msg_a', 'client.status_changed', 'http://a.test', '{\"n\": 1}', 'delivered', 1),"
        " ('msg_a', 'client.status_changed', 'http://b.test', '{\"n\": 1}', 'pending', 2),"
        " ('msg_b', 'provisioning.finished', 'http://a.test', '{\"n\": 2}', 'failed', 12)",
    )
    _execute(
        url,
        "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args) "
        "VALUES ('events', 'events.deliver', 'events-delivery-2', '{\"delivery_id\": 2}')",
    )

    upgrade(url)

    assert _rows(
        url,
        "SELECT event_id, event_type, payload, fanned_out_at IS NOT NULL "
        "FROM webhook_event ORDER BY event_id",
    ) == [
        ("msg_a", "client.status_changed", {"n": 1}, True),
        ("msg_b", "provisioning.finished", {"n": 2}, True),
    ]
    assert _rows(url, "SELECT queue_name, task_name, queueing_lock FROM procrastinate_jobs") == [
        ("webhooks", "webhooks.deliver", "webhooks-delivery-2")
    ]

    downgrade(url, "0008_webhook_delivery")

    assert _rows(url, "SELECT queue_name, task_name, queueing_lock FROM procrastinate_jobs") == [
        ("events", "events.deliver", "events-delivery-2")
    ]
    assert _rows(url, "SELECT count(*) FROM webhook_delivery") == [(3,)]
