"""`/docs` and `/redoc` render with nothing but the app: no CDN, no web fonts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.console.live import serving

EXTERNAL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")


@pytest.mark.parametrize(
    ("page", "asset"),
    [
        ("/docs", "/docs-assets/swagger-ui-bundle.js"),
        ("/redoc", "/docs-assets/redoc.standalone.js"),
    ],
)
async def test_the_docs_pages_load_their_assets_from_the_app(
    client: httpx.AsyncClient, page: str, asset: str
) -> None:
    html = await client.get(page)
    script = await client.get(asset)

    assert html.status_code == 200
    assert asset in html.text
    assert EXTERNAL.search(html.text) is None, "a docs page refers to another host"
    assert "fonts.googleapis" not in html.text
    assert html.headers["content-security-policy"] == "img-src 'self' data:"
    assert script.status_code == 200
    assert len(script.content) > 100_000


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    from app.main import create_app

    app: FastAPI = create_app(settings)
    with serving(app) as base:
        yield base


@pytest.mark.parametrize(
    ("page", "rendered"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", ".api-content h2")],
)
async def test_the_docs_render_in_a_browser_that_cannot_reach_the_internet(
    live: str, browser: Any, page: str, rendered: str
) -> None:
    context = await browser.new_context()
    elsewhere: list[str] = []

    async def only_loopback(route: Any) -> None:
        if route.request.url.startswith(live):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_loopback)
    try:
        tab = await context.new_page()
        await tab.goto(f"{live}{page}")
        await tab.locator(rendered).first.wait_for(timeout=20_000)
    finally:
        await context.close()

    assert [url for url in elsewhere if not url.startswith("data:")] == []
