"""Sending one CTCT call: the budget, the credentials, the one token renewal, bounded retries.

`CallSender.send` takes a grant from the shared budget before every HTTP attempt, carries
`x-api-key` and the partner JWT (or only a user's token) as `Authorization: Bearer …`, renews the
partner token once on a 401 and sends once more, shares what a 429 taught with every process
through the budget, and maps every failure to a `CtctError`. Only reads are retried, a bounded
number of times; the caller says which calls are reads.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog

from app.ctct.auth import PartnerTokenProvider
from app.ctct.budget import CallBudget
from app.ctct.errors import (
    CtctBudgetTimeout,
    CtctError,
    CtctRateLimited,
    CtctUnavailable,
    UnavailableReason,
    error_from_response,
)
from app.ctct.priorities import Priority
from app.kit.backoff import backoff_delay
from app.kit.metrics import CTCT_CALLS, CTCT_RATE_LIMIT_WAITS
from app.settings import CtctSettings

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_CAP_SECONDS = 5.0
THROTTLE_PENALTY_SECONDS = 1.0


def http_timeout(settings: CtctSettings) -> httpx.Timeout:
    """The httpx timeouts of one attempt: `timeout_seconds`, connecting within at most 5 s."""
    return httpx.Timeout(
        settings.timeout_seconds,
        connect=min(CONNECT_TIMEOUT_CAP_SECONDS, settings.timeout_seconds),
    )


@dataclass(frozen=True)
class CtctCall:
    """One CTCT operation to send: its name (for logs and metrics), method, URL and body."""

    operation: str
    method: str
    url: str
    params: Mapping[str, str] | None = None
    json: object | None = None
    encoded_account_id: str | None = None
    # Partner operations carry our `x-api-key`; a user's call carries only the user's token.
    partner_credentials: bool = True
    # Values the call sends that CTCT may echo and we must never keep (a client's password).
    secrets: tuple[str, ...] = ()


class CallSender:
    """Sends `CtctCall`s over an injected `httpx.AsyncClient`; answers only 2xx responses."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: CtctSettings,
        tokens: PartnerTokenProvider,
        budget: CallBudget,
        *,
        retry_base_seconds: float,
        retry_cap_seconds: float,
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
    ) -> None:
        self._http = http
        self._settings = settings
        self._tokens = tokens
        self._budget = budget
        self._retry_base = retry_base_seconds
        self._retry_cap = retry_cap_seconds
        self._sleep = sleep
        self._rng = rng
        self._timeout = http_timeout(settings)

    async def send(
        self,
        call: CtctCall,
        *,
        priority: Priority,
        retry: bool,
        max_wait: float | None,
        user_token: str | None = None,
    ) -> httpx.Response:
        """The 2xx answer to `call`, retried when `retry` and the error allows; else the error."""
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                response = await self._authorized(call, priority, max_wait, user_token)
            except CtctError as exc:
                await self._absorb(exc, attempt)
                retryable = (
                    retry
                    and exc.should_retry
                    and not isinstance(exc, CtctBudgetTimeout)
                    and attempt < self._settings.read_retries
                )
                fields = _error_fields(call, exc, attempt)
                if not retryable:
                    log.warning(f"ctct.{call.operation}.failed", **fields)
                    raise
                delay = (
                    0.0
                    if isinstance(exc, CtctRateLimited)
                    else backoff_delay(
                        attempt, base=self._retry_base, cap=self._retry_cap, rng=self._rng
                    )
                )
                log.info(f"ctct.{call.operation}.retrying", delay=round(delay, 3), **fields)
                await self._sleep(delay)
                attempt += 1
                continue
            log.info(
                f"ctct.{call.operation}.succeeded",
                status=response.status_code,
                attempts=attempt + 1,
                duration_ms=round((time.monotonic() - started) * 1000),
                encoded_account_id=call.encoded_account_id,
            )
            return response

    async def _absorb(self, exc: CtctError, attempt: int) -> None:
        """Share what a 429 taught us with every process through the budget."""
        if not isinstance(exc, CtctRateLimited):
            return
        CTCT_RATE_LIMIT_WAITS.labels(reason=exc.kind).inc()
        if exc.kind == "quota_exceeded":
            await self._budget.mark_exhausted()
        else:
            await self._budget.penalize(
                THROTTLE_PENALTY_SECONDS
                + backoff_delay(attempt, base=self._retry_base, cap=self._retry_cap, rng=self._rng)
            )

    async def _authorized(
        self,
        call: CtctCall,
        priority: Priority,
        max_wait: float | None,
        user_token: str | None,
    ) -> httpx.Response:
        if user_token is not None:
            response = await self._send(call, user_token, priority, max_wait)
        else:
            token = await self._tokens.token()
            response = await self._send(call, token, priority, max_wait)
            if response.status_code == 401:
                # The token may have been revoked or expired early: renew once, send once more.
                self._tokens.invalidate(token)
                log.info(f"ctct.{call.operation}.token_refused")
                token = await self._tokens.token()
                response = await self._send(call, token, priority, max_wait)
        if response.is_success:
            return response
        raise error_from_response(
            response.status_code,
            response.content,
            operation=call.operation,
            encoded_account_id=call.encoded_account_id,
            secrets=call.secrets,
        )

    async def _send(
        self, call: CtctCall, bearer: str, priority: Priority, max_wait: float | None
    ) -> httpx.Response:
        slot = await self._budget.acquire(priority, max_wait=max_wait)
        return await self._http_request(call, bearer, slot)

    async def _http_request(
        self, call: CtctCall, bearer: str, slot: datetime | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        if call.partner_credentials:
            headers["x-api-key"] = self._settings.api_key.get_secret_value()
        try:
            # httpx timeouts do not apply to every transport (ASGITransport ignores them).
            async with asyncio.timeout(self._settings.timeout_seconds):
                response = await self._http.request(
                    call.method,
                    call.url,
                    params=call.params,
                    json=call.json,
                    headers=headers,
                    timeout=self._timeout,
                    extensions=self._sent_hook(slot),
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            CTCT_CALLS.labels(operation=call.operation, status="error").inc()
            reason: UnavailableReason = (
                "connect" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
            )
            raise CtctUnavailable(
                f"CTCT did not answer within {self._settings.timeout_seconds:g}s",
                reason=reason,
                operation=call.operation,
            ) from exc
        except httpx.ConnectError as exc:
            CTCT_CALLS.labels(operation=call.operation, status="error").inc()
            raise CtctUnavailable(
                "could not connect to CTCT", reason="connect", operation=call.operation
            ) from exc
        except httpx.TransportError as exc:
            CTCT_CALLS.labels(operation=call.operation, status="error").inc()
            raise CtctUnavailable(
                f"the connection to CTCT failed ({type(exc).__name__})",
                reason="connection_lost",
                operation=call.operation,
            ) from exc
        CTCT_CALLS.labels(operation=call.operation, status=str(response.status_code)).inc()
        return response

    def _sent_hook(self, slot: datetime | None) -> dict[str, object] | None:
        """An httpcore trace hook that tells the budget when the request is on the wire."""
        if slot is None:
            return None
        budget = self._budget

        async def trace(event: str, _info: dict[str, object]) -> None:
            if event == "http11.send_request_body.complete":
                budget.note_sent(slot)

        return {"trace": trace}


def _error_fields(call: CtctCall, exc: CtctError, attempt: int) -> dict[str, object]:
    return {
        "error_type": type(exc).__name__,
        "status": exc.status,
        "error_key": exc.error_key,
        "attempt": attempt + 1,
        "encoded_account_id": call.encoded_account_id,
    }
