"""Verifying CTCT's webhook signatures: a JWS with detached, unencoded content (RFC 7515 + 7797).

CTCT signs the raw request body with RS256; the JWS header carries `ts` (unix seconds),
`b64: false` and `crit: ["b64"]`, and the public keys are published at a JWKS URL (NOTES
§2.9-2.13). NOTES does not promise a `kid`: a JWS with one is checked against that key; one
without is checked against the only key published, and refused while several are. The compact
form arrives as `<header>..<signature>`: the payload segment must be empty, so what is verified
is exactly the body we act on.

AppError
├── InvalidCtctSignature (401)   missing, malformed, stale, wrong algorithm, unknown key, forged
└── UpstreamUnavailable (503)
    ├── CtctKeysUnavailable      the JWKS could not be fetched (CTCT retries for an hour)
    └── CtctWebhooksOff          no JWKS URL is configured, so nothing can be verified

Cheap checks (shape, algorithm, `b64`, `ts`) come before any key lookup, so a stream of forged
requests never reaches the JWKS URL; an unknown `kid` refetches the key set at most once per
`UNKNOWN_KID_REFETCH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter

from app.errors import AppError, UpstreamUnavailable
from app.settings import WebhookSettings

log = structlog.get_logger(__name__)

ALGORITHM = "RS256"
UNKNOWN_KID_REFETCH_SECONDS = 10.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_SIGNATURE_CHARS = 4096

# `ts` is CTCT's own header parameter: joserfc rejects parameters its registry does not know.
REGISTRY = jws.JWSRegistry(
    header_registry={"ts": HeaderParameter("Signing time (unix seconds)", "int", required=True)},
    algorithms=[ALGORITHM],
)


class InvalidCtctSignature(AppError):
    status = 401
    type_slug = "ctct-webhook-signature"
    title = "The webhook is not signed by Constant Contact"


class CtctKeysUnavailable(UpstreamUnavailable):
    type_slug = "ctct-jwks-unavailable"
    title = "Constant Contact's signing keys could not be fetched"


class CtctWebhooksOff(UpstreamUnavailable):
    type_slug = "ctct-webhooks-not-configured"
    title = "CTCT webhooks are not configured"


def _b64url_json(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCtctSignature("The JWS header is not base64url-encoded JSON.") from exc
    if not isinstance(value, dict):
        raise InvalidCtctSignature("The JWS header is not a JSON object.")
    return value


def checked_header(compact: str | None, *, now: float, max_age_seconds: float) -> dict[str, Any]:
    """The JWS header, if the signature's shape, algorithm, `b64` and `ts` are acceptable."""
    if not compact or not compact.strip():
        raise InvalidCtctSignature("The request carries no CTCT signature.")
    if len(compact) > MAX_SIGNATURE_CHARS:
        raise InvalidCtctSignature("The signature is too long.")
    parts = compact.strip().split(".")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise InvalidCtctSignature("The signature is not a compact JWS.")
    if parts[1]:
        raise InvalidCtctSignature("The JWS must have detached content (`<header>..<sig>`).")
    header = _b64url_json(parts[0])
    if header.get("alg") != ALGORITHM:
        raise InvalidCtctSignature(f"The JWS algorithm must be {ALGORITHM}.")
    crit = header.get("crit")
    if header.get("b64") is not False or not isinstance(crit, list) or "b64" not in crit:
        raise InvalidCtctSignature('The JWS must be unencoded: `"b64": false`, crit ["b64"].')
    ts = header.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidCtctSignature("The JWS header has no `ts`.")
    if abs(now - ts) > max_age_seconds:
        raise InvalidCtctSignature("The signature is too old (or from the future).")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise InvalidCtctSignature("The JWS `kid` must be a non-empty string.")
    return header


class CtctKeys:
    """CTCT's public signing keys, fetched from the JWKS URL and cached."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: WebhookSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._monotonic = monotonic
        self._keys: dict[str, RSAKey] = {}
        self._published = 0
        self._fetched_at: float | None = None
        self._refetched_for_kid_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @classmethod
    def build(
        cls, settings: WebhookSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> CtctKeys:
        """Keys with an HTTP client of their own (close with `aclose`)."""
        http = httpx.AsyncClient(
            transport=transport, timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False
        )
        return cls(http, settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None
            and self._monotonic() - self._fetched_at < self._settings.ctct_jwks_cache_seconds
        )

    async def key(self, kid: str | None) -> RSAKey:
        """The key with `kid` (without one: the only key published): cached, fetched when stale,
        refetched once when unknown."""
        if not self._fresh():
            await self._refresh(only_if_older_than=self._fetched_at)
        if kid is None:
            return self._only_key()
        key = self._keys.get(kid)
        if key is not None:
            return key
        last = self._refetched_for_kid_at
        if last is None or self._monotonic() - last >= UNKNOWN_KID_REFETCH_SECONDS:
            self._refetched_for_kid_at = self._monotonic()
            await self._refresh(only_if_older_than=self._fetched_at)
            key = self._keys.get(kid)
        if key is None:
            raise InvalidCtctSignature("The JWS is signed with a key CTCT does not publish.")
        return key

    def _only_key(self) -> RSAKey:
        if self._published != 1 or len(self._keys) != 1:
            raise InvalidCtctSignature(
                "The JWS names no `kid` and CTCT does not publish exactly one signing key."
            )
        return next(iter(self._keys.values()))

    async def _refresh(self, *, only_if_older_than: float | None) -> None:
        url = self._settings.ctct_jwks_url
        if not url:
            raise CtctWebhooksOff("WEBHOOK_CTCT_JWKS_URL is not set: no signature can be checked.")
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at != only_if_older_than:
                return  # another request fetched while we waited for the lock
            try:
                response = await self._http.get(url)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("ctct.jwks.fetch_failed", error_type=type(exc).__name__)
                raise CtctKeysUnavailable("CTCT's JWKS could not be fetched; retry later.") from exc
            self._keys, self._published = _rsa_signing_keys(document)
            self._fetched_at = self._monotonic()
            self.fetches += 1
            log.info("ctct.jwks.fetched", keys=len(self._keys))

    def checked_header(self, compact: str | None, *, now: float) -> dict[str, Any]:
        """The cheap checks (no body, no key): fails before a forged request's body is read."""
        return checked_header(compact, now=now, max_age_seconds=self._settings.ctct_max_age_seconds)

    async def verify(self, compact: str | None, body: bytes, *, now: float) -> dict[str, Any]:
        """The verified JWS header; raises `InvalidCtctSignature` for anything not from CTCT."""
        header = self.checked_header(compact, now=now)
        assert compact is not None
        key = await self.key(header.get("kid"))
        try:
            jws.deserialize_compact(compact.strip(), key, registry=REGISTRY, payload=body)
        except JoseError as exc:
            raise InvalidCtctSignature("The signature does not match the body.") from exc
        return header


def _rsa_signing_keys(document: object) -> tuple[dict[str, RSAKey], int]:
    """The RSA signature keys of a JWKS document by `kid` (a key without one under ""), and how
    many signing keys it publishes in all (others are skipped)."""
    keys: dict[str, RSAKey] = {}
    published = 0
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        published += 1
        kid = entry.get("kid", "")
        if entry.get("kty") != "RSA" or not isinstance(kid, str):
            continue
        try:
            keys[kid] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue
    return keys, published
