"""The partner JWT: fetched with client credentials, shared by every call of this process.

One fetch at a time per process, renewed ahead of expiry; a 401 from CTCT invalidates the token
it was sent with, so any number of concurrent 401s cause exactly one renewal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import structlog

from app.ctct.errors import (
    CtctAuthError,
    CtctError,
    CtctUnavailable,
    UnavailableReason,
    error_from_response,
)
from app.kit.metrics import CTCT_TOKEN_FETCHES
from app.settings import CtctSettings

log = structlog.get_logger(__name__)

PARTNER_SCOPE = "v3api/general.partner"
DEFAULT_LIFETIME_SECONDS = 3600.0
RENEW_AHEAD_SECONDS = 300.0
RENEW_AHEAD_FRACTION = 0.1
RENEWAL_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class PartnerToken:
    """A partner JWT and when (on the provider's clock) it expires."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def renew_at(self) -> float:
        """Renew when 5 minutes or 10% of the lifetime remain, whichever comes later."""
        lifetime = self.expires_at - self.obtained_at
        margin = min(RENEW_AHEAD_SECONDS, lifetime * RENEW_AHEAD_FRACTION)
        return self.expires_at - margin


class PartnerTokenProvider:
    """Hands out a valid partner JWT, fetching a new one only when needed."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: CtctSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: PartnerToken | None = None
        self._fetches = 0
        self._failure: CtctError | None = None
        self._retry_renewal_at = 0.0

    async def token(self) -> str:
        """A token that is valid now; fetches one (once per process) when needed."""
        cached = self._cached(self._clock())
        if cached is not None:
            return cached
        # Counts finished fetches, so a waiter can tell that one ended while it queued.
        generation = self._fetches
        async with self._lock:
            now = self._clock()
            cached = self._cached(now)
            if cached is not None:
                return cached
            if self._fetches != generation and self._failure is not None:
                # The fetch this caller queued behind has just failed: share its outcome
                # instead of sending one more request per waiter.
                raise self._failure
            current = self._current
            try:
                fresh = await self._fetch()
            except CtctError as exc:
                self._fetches += 1
                self._failure = exc
                if (
                    isinstance(exc, CtctUnavailable)
                    and current is not None
                    and now < current.expires_at
                ):
                    # A renewal ahead of expiry failed while the old token still works: keep
                    # using it, and try again a little later rather than on every call.
                    self._retry_renewal_at = now + RENEWAL_RETRY_SECONDS
                    log.warning("ctct.token.renewal_deferred", expires_in=current.expires_at - now)
                    return current.value
                raise
            self._fetches += 1
            self._failure = None
            self._retry_renewal_at = 0.0
            self._current = fresh
            return fresh.value

    def _cached(self, now: float) -> str | None:
        current = self._current
        if current is None:
            return None
        if now < current.renew_at:
            return current.value
        if now < current.expires_at and now < self._retry_renewal_at:
            return current.value
        return None

    def invalidate(self, token: str) -> None:
        """Forget `token` after CTCT refused it, unless a newer one has replaced it already."""
        if self._current is not None and self._current.value == token:
            self._current = None

    async def _fetch(self) -> PartnerToken:
        started = self._clock()
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                response = await self._http.post(
                    self._settings.token_url,
                    params={"grant_type": "client_credentials", "scope": PARTNER_SCOPE},
                    auth=httpx.BasicAuth(
                        self._settings.client_id,
                        self._settings.client_secret.get_secret_value(),
                    ),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                    content=b"",
                    timeout=self._settings.timeout_seconds,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            CTCT_TOKEN_FETCHES.labels(outcome="unavailable").inc()
            log.warning("ctct.token.fetch_timed_out")
            raise CtctUnavailable(
                "the token endpoint did not answer in time", reason="timeout", operation="token"
            ) from exc
        except httpx.TransportError as exc:
            CTCT_TOKEN_FETCHES.labels(outcome="unavailable").inc()
            log.warning("ctct.token.fetch_unreachable", error_type=type(exc).__name__)
            reason: UnavailableReason = (
                "connect" if isinstance(exc, httpx.ConnectError) else "connection_lost"
            )
            raise CtctUnavailable(
                "the token endpoint is unreachable", reason=reason, operation="token"
            ) from exc
        if response.status_code != 200:
            error = self._refusal(response)
            outcome = "unavailable" if error.should_retry else "rejected"
            CTCT_TOKEN_FETCHES.labels(outcome=outcome).inc()
            log.warning(
                "ctct.token.fetch_failed", status=response.status_code, error_key=error.error_key
            )
            raise error
        token = self._parse(response, started)
        CTCT_TOKEN_FETCHES.labels(outcome="success").inc()
        log.info("ctct.token.fetched", expires_in=token.expires_at - started)
        return token

    @staticmethod
    def _refusal(response: httpx.Response) -> CtctError:
        error = error_from_response(response.status_code, response.content, operation="token")
        if response.status_code in (400, 401, 403, 415):
            return CtctAuthError(
                f"the token endpoint refused our credentials: {error.message}",
                status=response.status_code,
                errors=error.errors,
                operation="token",
            )
        return error

    @staticmethod
    def _parse(response: httpx.Response, started: float) -> PartnerToken:
        try:
            body = response.json()
            value = body["access_token"]
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_SECONDS))
        except (ValueError, KeyError, TypeError) as exc:
            CTCT_TOKEN_FETCHES.labels(outcome="rejected").inc()
            raise CtctAuthError(
                "the token endpoint answered without a usable access_token",
                status=response.status_code,
                operation="token",
            ) from exc
        if not isinstance(value, str) or not value or lifetime <= 0:
            CTCT_TOKEN_FETCHES.labels(outcome="rejected").inc()
            raise CtctAuthError(
                "the token endpoint answered without a usable access_token",
                status=response.status_code,
                operation="token",
            )
        return PartnerToken(value=value, obtained_at=started, expires_at=started + lifetime)
