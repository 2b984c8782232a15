"""What every console request needs: the signed session cookie, CSRF nonce and proxy trust.

A session is a signed (not encrypted) cookie holding a random nonce, the person's email once
they signed in, and its issue time; it expires `CONSOLE_SESSION_TTL` after issue. The nonce is
also the CSRF token every form carries. The person is looked up on every request, so a disabled
person's or a changed role's session follows at once.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from app.settings import ConsoleSettings, Environment, Settings
from app.state import AppState

SESSION_COOKIE = "partnergate_console"
FLASH_COOKIE = "partnergate_console_flash"
FLASH_TTL_SECONDS = 120
PENDING_COOKIES = "console_cookies"


@dataclass(frozen=True)
class ConsoleSession:
    """One browser's session: anonymous (email None) until its person signs in."""

    nonce: str
    email: str | None = None

    @classmethod
    def fresh(cls, email: str | None = None) -> ConsoleSession:
        return cls(nonce=secrets.token_urlsafe(24), email=email)


@dataclass(frozen=True)
class Flash:
    """A one-time message shown on the next page: `ok` or `error`."""

    kind: str
    text: str


@dataclass
class ConsoleKit:
    """The console's configuration and its signer; lives on the console app's state."""

    settings: Settings
    resources: Callable[[], AppState]
    _signer: URLSafeTimedSerializer = field(init=False)

    def __post_init__(self) -> None:
        self._signer = URLSafeTimedSerializer(
            self.settings.console_signing_secret(), salt="partnergate.console"
        )

    @property
    def config(self) -> ConsoleSettings:
        return self.settings.console

    @property
    def ttl_seconds(self) -> int:
        return int(self.config.session_ttl.total_seconds())

    def read_session(self, conn: HTTPConnection) -> ConsoleSession | None:
        """The cookie's session if its signature holds and it has not expired."""
        data = self._load(conn.cookies.get(SESSION_COOKIE), "session", self.ttl_seconds)
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        email = data.get("e")
        return ConsoleSession(nonce=data["n"], email=email if isinstance(email, str) else None)

    def read_flash(self, conn: HTTPConnection) -> Flash | None:
        data = self._load(conn.cookies.get(FLASH_COOKIE), "flash", FLASH_TTL_SECONDS)
        if isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data):
            return Flash(data[0], data[1])
        return None

    def _load(self, raw: str | None, purpose: str, max_age: int) -> Any:
        if not raw or len(raw) > 4096:
            return None
        try:
            loaded: Any = self._signer.loads(raw, max_age=max_age, salt=f"console.{purpose}")
        except BadSignature:  # also SignatureExpired
            return None
        return loaded

    def _cookie(self, conn: HTTPConnection, name: str, value: str | None, max_age: int) -> bytes:
        response = Response()
        secure = conn.url.scheme == "https" or self.settings.environment is Environment.PRODUCTION
        path = conn.scope.get("root_path") or "/"
        if value is None:
            response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="lax")
        else:
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=path,
                secure=secure,
                httponly=True,
                samesite="lax",
            )
        return next(value for key, value in response.raw_headers if key == b"set-cookie")

    def queue_session(self, conn: HTTPConnection, session: ConsoleSession | None) -> None:
        """Send this session (or its removal) with the response."""
        value = None
        if session is not None:
            payload = {"n": session.nonce, "e": session.email}
            value = self._signer.dumps(payload, salt="console.session")
        _pending(conn).append(self._cookie(conn, SESSION_COOKIE, value, self.ttl_seconds))

    def queue_flash(self, conn: HTTPConnection, flash: Flash | None) -> None:
        """Show `flash` on the next page (None: clear the one just shown)."""
        value = None
        if flash is not None:
            value = self._signer.dumps([flash.kind, flash.text], salt="console.flash")
        _pending(conn).append(self._cookie(conn, FLASH_COOKIE, value, FLASH_TTL_SECONDS))

    def trusted_peer(self, conn: HTTPConnection) -> bool:
        """Whether the connection comes straight from a configured sign-on proxy."""
        return peer_is_trusted(conn.client.host if conn.client else None, self.config)


def peer_is_trusted(host: str | None, config: ConsoleSettings) -> bool:
    """Whether `host` lies in one of `CONSOLE_TRUSTED_PROXIES`."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in config.trusted_proxies)


def _pending(conn: HTTPConnection) -> list[bytes]:
    cookies: list[bytes] = conn.scope.setdefault("state", {}).setdefault(PENDING_COOKIES, [])
    return cookies


def pending_cookies(scope: MutableMapping[str, Any]) -> Sequence[bytes]:
    """The Set-Cookie values queued while handling this request."""
    cookies: Sequence[bytes] = scope.get("state", {}).get(PENDING_COOKIES, ())
    return cookies
