"""Partner JWTs (client-credentials, 1 hour, on the sandbox clock) and opaque user tokens."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

from app.sandbox.partners import Partner

TOKEN_LIFETIME_SECONDS = 3600
PARTNER_SCOPE = "v3api/general.partner"
ISSUER = "https://sandbox.partnergate.invalid/oauth2"
_ALGORITHM = "HS256"


class PartnerTokens:
    """Mints and checks partner JWTs; `invalidate_all` voids every token issued so far."""

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret or secrets.token_urlsafe(48)
        self._generation = 0

    def mint(self, partner: Partner, now: datetime) -> str:
        """A Cognito-like access token for `partner`, valid for an hour of sandbox time."""
        issued_at = int(now.timestamp())
        claims = {
            "iss": ISSUER,
            "sub": partner.client_id,
            "client_id": partner.client_id,
            "token_use": "access",
            "scope": PARTNER_SCOPE,
            "iat": issued_at,
            "exp": issued_at + TOKEN_LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
            "gen": self._generation,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def client_id_of(self, token: str, now: datetime) -> str | None:
        """The client id a valid token was issued to; None when invalid, expired or voided."""
        try:
            # Expiry is checked against the sandbox clock below, not the wall clock.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidTokenError:
            return None
        expires = claims.get("exp")
        client_id = claims.get("client_id")
        if not isinstance(expires, int) or expires <= now.timestamp():
            return None
        if claims.get("gen") != self._generation or not isinstance(client_id, str):
            return None
        return client_id

    def invalidate_all(self) -> None:
        """Void every partner token issued so far (both "expire" and "revoke" do this)."""
        self._generation += 1


@dataclass(frozen=True, slots=True)
class UserGrant:
    """What a user token stands for: one account, used through one app's API key."""

    encoded_account_id: str
    api_key: str


class UserTokens:
    """Opaque user access tokens, as the product would get them from CTCT's OAuth2 flow."""

    def __init__(self) -> None:
        self._grants: dict[str, UserGrant] = {}

    def mint(self, encoded_account_id: str, api_key: str, token: str | None = None) -> str:
        """A new token bound to the account (`token` picks a fixed value, e.g. for demos)."""
        value = token or secrets.token_urlsafe(32)
        self._grants[value] = UserGrant(encoded_account_id, api_key)
        return value

    def grant(self, token: str) -> UserGrant | None:
        """What `token` stands for, if it is known."""
        return self._grants.get(token)

    def clear(self) -> None:
        """Forget every user token."""
        self._grants.clear()
