"""The audit's own CTCT client, which counts the calls one run spends."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct.client import CtctClient, build_ctct_client
from app.settings import CtctSettings


@dataclass
class CallMeter:
    """Counts the HTTP requests one audit's CTCT client sends: list pages and token fetches."""

    token_path: str
    list_calls: int = 0
    token_calls: int = 0

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.path == self.token_path and request.method == "POST":
            self.token_calls += 1
        else:
            self.list_calls += 1


def build_audit_client(
    settings: CtctSettings,
    *,
    engine: AsyncEngine,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[CtctClient, CallMeter]:
    """A CTCT client of the audit's own (sharing the database budget) that counts its calls."""
    meter = CallMeter(token_path=httpx.URL(settings.token_url).path)
    client = build_ctct_client(
        settings, engine=engine, transport=transport, on_request=meter.on_request
    )
    return client, meter
