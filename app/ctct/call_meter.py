"""Counting the CTCT requests one piece of work spends, on a CTCT client the process shares.

Every CTCT client has `count_call` as a request hook (`build_ctct_client`). A piece of work (an
audit run, a shared partner-list read) sets its own `CallMeter` for its duration (`metering`);
the hook counts a request only for the work whose task (or a task it started, like the audit's
read-ahead reader) sends it, since context variables follow tasks. Other jobs on the same
client are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpx


@dataclass
class CallMeter:
    """Counts the HTTP requests one piece of work sends: list pages and token fetches."""

    token_path: str
    list_calls: int = 0
    token_calls: int = 0

    def count(self, request: httpx.Request) -> None:
        if request.url.path == self.token_path and request.method == "POST":
            self.token_calls += 1
        else:
            self.list_calls += 1


_current_meter: ContextVar[CallMeter | None] = ContextVar("ctct_call_meter", default=None)


async def count_call(request: httpx.Request) -> None:
    """The CTCT client's request hook: count the request for the run that sends it, if any."""
    meter = _current_meter.get()
    if meter is not None:
        meter.count(request)


@contextmanager
def metering(meter: CallMeter) -> Iterator[CallMeter]:
    """Count this task's (and its child tasks') CTCT requests in `meter`."""
    token = _current_meter.set(meter)
    try:
        yield meter
    finally:
        _current_meter.reset(token)
