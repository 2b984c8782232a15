"""Counting what an engine does while a block runs (statements, commits), for tests that
bound the database work of an operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def engine_events(
    engine: AsyncEngine, name: str, keep: Callable[..., bool] | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """The arguments of each `name` event (a SQLAlchemy engine event) the block causes, kept
    only where `keep(*arguments)` holds when it is given."""
    seen: list[tuple[Any, ...]] = []

    def record(*arguments: Any) -> None:
        if keep is None or keep(*arguments):
            seen.append(arguments)

    event.listen(engine.sync_engine, name, record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, name, record)
