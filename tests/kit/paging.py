"""Walk a list endpoint to its end by `next_cursor`, as a caller would."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

Body = dict[str, Any]


async def walk(
    http: httpx.AsyncClient,
    path: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str | int] | None = None,
    page_of: Callable[[Body], Body] = lambda body: body,
    max_pages: int = 1000,
) -> list[list[Body]]:
    """Every page's items, in order.

    Fails on an error, on an empty page after the first (the page before it should have said
    `next_cursor: null`), or on a cursor that comes back.
    """
    pages: list[list[Body]] = []
    cursors: set[str] = set()
    cursor: str | None = None
    while len(pages) < max_pages:
        query = dict(params or {})
        if cursor is not None:
            query["cursor"] = cursor
        response = await http.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = page_of(response.json())
        assert set(page) == {"items", "next_cursor"}, page
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            assert page["items"] or len(pages) == 1, "the previous page offered an empty one"
            return pages
        assert page["items"], f"page {len(pages)} is empty but offers a next_cursor"
        assert cursor not in cursors, "a cursor came back twice"
        cursors.add(cursor)
    raise AssertionError(f"{path} did not end within {max_pages} pages")
