"""The list endpoint's `limit` rule and its opaque `offset` (base64 of the record offset, `=`
written as `*`, as CTCT's `MTA*` for 10 suggests)."""

from __future__ import annotations

import base64
import binascii

DEFAULT_LIMIT = 50
MIN_LIMIT = 10
MAX_LIMIT = 50


def page_limit(raw: str | None) -> int:
    """The page size: an int from 10 to 50, anything else means the default 50."""
    try:
        limit = int(raw) if raw is not None else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT
    return limit if MIN_LIMIT <= limit <= MAX_LIMIT else DEFAULT_LIMIT


def encode_offset(offset: int) -> str:
    """The opaque token for a record offset."""
    return base64.b64encode(str(offset).encode()).decode().replace("=", "*")


def decode_offset(token: str | None) -> int | None:
    """The record offset in a token (0 when absent); None when the token is not one of ours."""
    if token is None:
        return 0
    try:
        text = base64.b64decode(token.replace("*", "="), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text.isdigit():
        return None
    return int(text)
