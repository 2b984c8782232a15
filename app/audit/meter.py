"""Counting the CTCT calls one audit run spends, on a CTCT client the process shares.

The worker builds one CTCT client at start with `count_call` as its request hook. A run sets its
own `CallMeter` for the duration of the run (`metering`); the hook counts a request only for the
run whose task (or a task it started, like the read-ahead reader) sends it, since context
variables follow tasks. Provisioning jobs on the same client are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.client import CtctClient, build_ctct_client
from app.ctct.quota_alert import QuotaLowHook
from app.settings import CtctSettings


@dataclass
class CallMeter:
    """Counts the HTTP requests one audit run sends: list pages and token fetches."""

    token_path: str
    list_calls: int = 0
    token_calls: int = 0

    def count(self, request: httpx.Request) -> None:
        if request.url.path == self.token_path and request.method == "POST":
            self.token_calls += 1
        else:
            self.list_calls += 1


_current_meter: ContextVar[CallMeter | None] = ContextVar("audit_call_meter", default=None)


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


def build_metered_ctct_client(
    settings: CtctSettings,
    *,
    engine: AsyncEngine,
    transport: httpx.AsyncBaseTransport | None = None,
    on_quota_low: QuotaLowHook | None = None,
) -> CtctClient:
    """A process's CTCT client whose requests an audit run can count (see `metering`)."""
    return build_ctct_client(
        settings,
        engine=engine,
        transport=transport,
        on_request=count_call,
        on_quota_low=on_quota_low,
    )
