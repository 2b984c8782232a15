"""The request-body limit: pure ASGI middleware that counts bytes as they are received.

It sits in front of routing, so it acts before any parsing and before authentication:

- a request that declares a `Content-Length` over the limit is answered 413 at once, its body
  never read (a client sending `Expect: 100-continue` is not even asked for it);
- a body that streams past the limit fails its next `receive()` with `BodyTooLarge`, which the
  app's problem handler renders as the same 413 problem (or, when nothing handles it, this
  middleware does); the rest of the body is never read.

A request whose `Content-Length` is within the limit passes through untouched: the server frames
the body by that length, so it cannot grow past it.

One limit serves every path, except the few given their own (`per_path`, exact paths: a file
upload such as `POST /v1/imports` takes up to its own setting, and checks it itself too).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem_response

BODY_TOO_LARGE_SLUG = "body-too-large"


class BodyTooLarge(HTTPException):
    """The body went past the limit while it was being read (rendered as a 413 problem)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"The request body is larger than the limit of {limit} bytes.")
        self.limit = limit


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Answers 413 (problem+json) to any request body over `max_bytes` (or its path's limit)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        declared = _declared_length(scope)
        if declared is not None:
            if declared > limit:
                await self._refuse(limit, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(limit, scope, receive, send)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            slug=BODY_TOO_LARGE_SLUG,
            title=HTTPStatus(413).phrase,
            detail=BodyTooLarge(limit).detail,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
