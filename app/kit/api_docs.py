"""`/docs` (Swagger UI) and `/redoc` with their assets served by the app, so they work offline.

FastAPI's defaults load both from a CDN and render a blank page without internet access. The
assets come from the `fastapi-offline` package (MIT; it bundles Swagger UI, Apache-2.0, and
ReDoc, MIT) and are served under `/docs-assets/`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
# Both bundles would still fetch an image from elsewhere (ReDoc's footer logo, Swagger UI's
# validator badge): the pages may load images from the app only.
OFFLINE_POLICY = {"Content-Security-Policy": "img-src 'self' data:"}


def assets_directory() -> Path:
    """Where the installed `fastapi_offline` package keeps Swagger UI's and ReDoc's files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_api_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets (create the app with docs_url=redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(OFFLINE_POLICY)
        return page

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(OFFLINE_POLICY)
        return page
