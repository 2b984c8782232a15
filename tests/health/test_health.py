"""Liveness, readiness (with Postgres cut and restored) and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import create_app
from tests.conftest import build_settings
from tests.kit.polling import poll_until
from tests.kit.tcp_proxy import PostgresProxy


async def test_healthz_answers_without_touching_anything(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_readyz_names_the_migrations_when_the_schema_is_behind(
    empty_database_url: str,
) -> None:
    application = create_app(build_settings(empty_database_url))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["failing_check"] == "migrations"


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[PostgresProxy]:
    proxy = PostgresProxy(database_url)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def test_readyz_turns_503_when_postgres_is_unreachable_and_recovers(
    proxy: PostgresProxy,
) -> None:
    application = create_app(build_settings(proxy.url))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200

            await proxy.cut()
            down = await poll_until(
                lambda: http.get("/readyz"), lambda r: r.status_code == 503, timeout=15
            )
            assert down.json()["failing_check"] == "database"
            assert (await http.get("/healthz")).status_code == 200

            await proxy.start()
            await poll_until(
                lambda: http.get("/readyz"), lambda r: r.status_code == 200, timeout=15
            )


async def test_metrics_expose_http_counts_in_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'partnergate_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        response.text
    )


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "req-123"})
    generated = await client.get("/healthz")

    assert echoed.headers["x-request-id"] == "req-123"
    assert len(generated.headers["x-request-id"]) == 32
