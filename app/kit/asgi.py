"""Plain ASGI endpoints for the hot paths: a Starlette route whose endpoint sends bytes it has.

FastAPI's per-request machinery (dependency and parameter resolution, response-model
validation, `jsonable_encoder`, a `Response` object) costs more than answering `/healthz` or a
cached access decision. A `JsonEndpoint` runs inside the app, behind every middleware (request
id, metrics, problem handlers), and skips only that machinery. Errors are raised as `AppError`
and rendered by the app's one problem handler. Each hot path keeps a FastAPI twin registered
after it, which documents it in /openapi.json (and answers the same way if ever reached).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

JSON_CONTENT_TYPE = (b"content-type", b"application/json")

Answer = Callable[[Scope], Awaitable[bytes]]


def bearer_secret(scope: Scope) -> str:
    """The secret of an `Authorization: Bearer <secret>` header, or "" without one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else ""
    return ""


async def send_json(send: Send, body: bytes, status: int = 200) -> None:
    """Send a complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [JSON_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class JsonEndpoint:
    """An ASGI endpoint that sends what `answer(scope)` returns as a 200 JSON response."""

    def __init__(self, path: str, answer: Answer) -> None:
        # `path` is what the request-context middleware labels metrics with.
        self.path = path
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await send_json(send, await self._answer(scope))

    def route(self) -> Route:
        """A route that serves exactly GET on `path`, left out of the schema (its twin is in)."""
        return _GetOnlyRoute(self.path, cast(Callable[..., Any], self))


class _GetOnlyRoute(Route):
    """A Starlette route (a non-function endpoint is served as an ASGI app) that claims only GET.

    Any other method falls through to the FastAPI twin, so HEAD and a wrong method get the
    same answers (405 problem, `Allow: GET`) as every other route of the app.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any]) -> None:
        super().__init__(path, endpoint, methods=["GET"], include_in_schema=False)
        self.methods = {"GET"}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        return (Match.NONE, {}) if match is Match.PARTIAL else (match, child_scope)
