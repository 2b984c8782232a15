"""Every error a client can cause is an RFC 9457 problem, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.main import create_app
from app.settings import Settings

echo = APIRouter()


class EchoBody(BaseModel):
    name: str = Field(min_length=2)
    count: int


@echo.post("/echo")
async def echo_route(body: EchoBody) -> EchoBody:
    return body


@echo.get("/crash")
async def crash_route() -> None:
    raise RuntimeError("secret internals: password=hunter22")


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    application.include_router(echo)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_unknown_route_is_a_404_problem(http: httpx.AsyncClient) -> None:
    body = _problem(await http.get("/nowhere"), 404)

    assert body["type"] == "https://partnergate.dev/problems/not-found"
    assert "/nowhere" in str(body["detail"])


async def test_wrong_method_is_a_405_problem(http: httpx.AsyncClient) -> None:
    response = await http.delete("/healthz")

    body = _problem(response, 405)
    assert body["type"] == "https://partnergate.dev/problems/method-not-allowed"
    assert response.headers["allow"] == "GET"


async def test_malformed_json_is_a_400_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/echo", content=b'{"name": "ab", ', headers={"content-type": "application/json"}
    )

    body = _problem(response, 400)
    assert body["type"] == "https://partnergate.dev/problems/malformed-json"


async def test_invalid_fields_are_listed_in_one_400_problem(http: httpx.AsyncClient) -> None:
    response = await http.post("/echo", json={"name": "a", "count": "many"})

    body = _problem(response, 400)
    assert body["type"] == "https://partnergate.dev/problems/validation-error"
    fields = {error["field"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"name", "count"}


async def test_a_bug_is_a_500_problem_without_internals(http: httpx.AsyncClient) -> None:
    response = await http.get("/crash")

    body = _problem(response, 500)
    assert "hunter22" not in response.text
    assert body["type"] == "https://partnergate.dev/problems/internal-error"
