"""The console sub-application: its pages, static assets, security headers and error pages.

It is mounted at /console by `app.main.create_app` and reaches the API's resources (engine,
sessions, CTCT client) through the parent's state, built by the parent's lifespan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlencode

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.console import (
    routes_audits,
    routes_auth,
    routes_clients,
    routes_operations,
    routes_overview,
    routes_transfers,
)
from app.console.deps import SignInRequired, Visitor
from app.console.kit import ConsoleKit, ConsoleSession, pending_cookies
from app.console.rendering import prefix, templates
from app.errors import AppError
from app.settings import ConsoleAuth, Settings
from app.state import AppState

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class ConsoleHeaders:
    """Pure ASGI middleware: security headers on every console response, pages never cached,
    and the cookies the request queued (session, flash)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                headers.extend((b"set-cookie", cookie) for cookie in pending_cookies(scope))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie_visitor(request: Request) -> Visitor:
    """The visitor as the cookie alone says (no database): enough to draw an error page."""
    kit: ConsoleKit = request.app.state.console
    session = kit.read_session(request)
    if session is None:
        return Visitor(ConsoleSession.fresh())
    return Visitor(session, session.email)


async def _error_page(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    # Whoever is refused sign-in is shown as nobody, whatever their cookie says.
    visitor = Visitor(ConsoleSession.fresh()) if status == 401 else _cookie_visitor(request)
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "visitor": visitor,
            "prefix": prefix(request),
            "flash": None,
            "title": title,
            "detail": detail,
            "status": status,
            "auth_mode": request.app.state.console.config.auth.value,
        },
        status_code=status,
        headers=dict(headers or {}),
    )


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    kit: ConsoleKit = request.app.state.console
    if kit.config.auth is ConsoleAuth.PROXY:
        return await _error_page(
            request,
            401,
            "Sign in through your organisation's sign-on",
            "The console did not receive your identity from the sign-on proxy.",
        )
    target = f"{prefix(request)}/sign-in"
    if request.method == "GET" and request.url.path.startswith(prefix(request) + "/"):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?" + urlencode({"next": back}, safe="/")
    return RedirectResponse(target, status_code=303)


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return await _error_page(request, exc.status, exc.title, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Not allowed here", 400: "Bad request"}
    detail = exc.detail if isinstance(exc.detail, str) else ""
    if exc.status_code == 404:
        detail = "There is no such page in the console."
    title = titles.get(exc.status_code, "Error")
    return await _error_page(request, exc.status_code, title, detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    return await _error_page(request, 404, "Not found", "There is no such page in the console.")


def create_console_app(settings: Settings, resources: Callable[[], AppState]) -> FastAPI:
    """The console, to mount at /console; `resources` returns the parent app's state."""
    console = FastAPI(title="partnergate console", docs_url=None, redoc_url=None, openapi_url=None)
    console.state.console = ConsoleKit(settings=settings, resources=resources)
    console.add_middleware(ConsoleHeaders)
    console.add_exception_handler(SignInRequired, _sign_in_required)
    console.add_exception_handler(AppError, _app_error)
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.add_exception_handler(RequestValidationError, _validation_error)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        routes_auth,
        routes_overview,
        routes_clients,
        routes_transfers,
        routes_audits,
        routes_operations,
    ):
        console.include_router(module.router)
    return console
