"""Pure ASGI middleware: a request id on every request and log line, and HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = structlog.get_logger("app.http")


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Binds `request_id` for the request's logs, echoes it back, counts and times requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
                HTTP_LATENCY.labels(route).observe(elapsed)
                if status >= 500 or route not in _QUIET_ROUTES:
                    log.info(
                        "http.request.served",
                        method=scope["method"],
                        route=route,
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                    )


# The hot and the probe endpoints would flood the log; metrics cover them.
_QUIET_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/access/{encoded_account_id}", "/v1/access:batch"}
)
