"""One pagination convention for every list endpoint: `{items, next_cursor}` and signed cursors.

A cursor is an opaque, HMAC-signed keyset position: the sort values of the last row a page
returned, bound to the listing's scope (its filters and sort), so a cursor from one listing or a
forged one is a 400 problem naming `cursor`, never a query. A page is read with `limit + 1` rows,
so the last page says `next_cursor: null` and no empty page is ever offered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from app.errors import FieldError, ValidationFailed

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 1024
_SIGNATURE_BYTES = 16

LimitQuery = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"page size, 1-{MAX_LIMIT}"),
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page, as given",
    ),
]

Position = tuple[Any, ...]


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldError("cursor", "is not a cursor this listing issued (use next_cursor as given)")]
    )


@dataclass(frozen=True)
class CursorCodec:
    """Signs and checks cursors with a server key shared by every replica."""

    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> CursorCodec:
        return cls(hashlib.sha256(b"partnergate-cursor\x00" + secret.encode()).digest())

    def _sign(self, scope: Sequence[object], body: bytes) -> bytes:
        scope_bytes = json.dumps(list(scope), sort_keys=True, separators=(",", ":")).encode()
        mac = hmac.new(self.key, scope_bytes + b"\x00" + body, hashlib.sha256)
        return mac.digest()[:_SIGNATURE_BYTES]

    def encode(self, scope: Sequence[object], position: Position) -> str:
        """The opaque cursor after `position`, valid only for the listing `scope`."""
        body = json.dumps(list(position), separators=(",", ":")).encode()
        raw = body + self._sign(scope, body)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, scope: Sequence[object], cursor: str | None) -> Position | None:
        """The position a cursor stands for (None for none); a 400 problem if forged or foreign."""
        if cursor is None:
            return None
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise _bad_cursor()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _bad_cursor() from None
        body, signature = raw[:-_SIGNATURE_BYTES], raw[-_SIGNATURE_BYTES:]
        if len(raw) <= _SIGNATURE_BYTES or not hmac.compare_digest(
            self._sign(scope, body), signature
        ):
            raise _bad_cursor()
        try:
            position = json.loads(body)
        except ValueError:
            raise _bad_cursor() from None
        if not isinstance(position, list):
            raise _bad_cursor()
        return tuple(position)

    def page(
        self,
        rows: Sequence[R],
        *,
        limit: int,
        scope: Sequence[object],
        position_of: Callable[[R], Position],
        item: Callable[[R], T],
    ) -> Page[T]:
        """A page from up to `limit + 1` rows read after the previous position."""
        more = len(rows) > limit
        kept = rows[:limit]
        next_cursor = self.encode(scope, position_of(kept[-1])) if more and kept else None
        return Page[T](items=[item(row) for row in kept], next_cursor=next_cursor)
