"""Pure ASGI middleware: a request id on every request and log line, and HTTP metrics.

It runs on every request, the hot paths included, so it does the least it can: one pass over
the headers, a random id from `os.urandom`, metric children resolved once per label set.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = structlog.get_logger("app.http")

# The hot and the probe endpoints would flood the log; metrics cover them.
_QUIET_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/access/{encoded_account_id}", "/v1/access:batch"}
)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            incoming = value.decode("latin-1")
            return incoming if _SAFE_REQUEST_ID.match(incoming) else None
    return None


class _Metrics:
    """`labels()` takes a lock and validates on each call; the children are looked up once."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        counter: Counter | None = self._requests.get((route, method, status))
        if counter is None:
            counter = HTTP_REQUESTS.labels(route, method, str(status))
            self._requests[route, method, status] = counter
        counter.inc()
        histogram: Histogram | None = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = HTTP_LATENCY.labels(route)
        histogram.observe(seconds)


class RequestContextMiddleware:
    """Binds `request_id` for the request's logs, echoes it back, counts and times requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._metrics = _Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self._metrics.record(route, scope["method"], status, elapsed)
            if status >= 500 or route not in _QUIET_ROUTES:
                log.info(
                    "http.request.served",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    request_id=request_id,
                )
