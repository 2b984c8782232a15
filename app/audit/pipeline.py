"""Reading our partner list ahead of the pages being applied.

A reader task fetches up to `READ_AHEAD_PAGES` pages ahead while the run applies them in order:
no transaction waits on CTCT, and a slow commit never delays the next CTCT call (the budget's
sliding window never gives back time lost between two grants). Memory stays flat: each page is
50 ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from app.ctct.client import LIST_LIMIT_MAX, CtctClient
from app.ctct.priorities import Priority
from app.ctct.schemas import AccountPage

READ_AHEAD_PAGES = 4


async def _pages(ctct: CtctClient) -> AsyncGenerator[AccountPage, None]:
    async for page in ctct.iter_account_pages(limit=LIST_LIMIT_MAX, priority=Priority.BACKGROUND):
        yield page


async def _read_ahead(
    ctct: CtctClient, queue: asyncio.Queue[AccountPage | Exception | None]
) -> None:
    """Queue every page in order, then None; or the error that stopped the listing."""
    try:
        async with contextlib.aclosing(_pages(ctct)) as pages:
            async for page in pages:
                await queue.put(page)
    except Exception as exc:  # handed to the consumer, in order, after the pages before it
        await queue.put(exc)
        return
    await queue.put(None)


NextPage = Callable[[], Awaitable[AccountPage | None]]


@contextlib.asynccontextmanager
async def read_ahead(ctct: CtctClient, depth: int = READ_AHEAD_PAGES) -> AsyncIterator[NextPage]:
    """Our partner list read `depth` pages ahead: `await next_page()` until it returns None.

    The error that stopped the listing (a `CtctError`, say) is raised by the call that would have
    returned the page it prevented. Leaving the block stops the reader.
    """
    queue: asyncio.Queue[AccountPage | Exception | None] = asyncio.Queue(depth)
    reader = asyncio.create_task(_read_ahead(ctct, queue))

    async def next_page() -> AccountPage | None:
        item = await queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    try:
        yield next_page
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
