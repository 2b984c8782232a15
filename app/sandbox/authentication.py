"""Who is calling: a partner (API key and partner JWT), a user (their access token), or a
client asking the token endpoint for a partner JWT (HTTP Basic); and that token endpoint."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from app.sandbox import errors
from app.sandbox.pipeline import FORM_MEDIA_TYPE, Caller, json_response, media_type
from app.sandbox.state import SandboxState
from app.sandbox.tokens import PARTNER_SCOPE, TOKEN_LIFETIME_SECONDS


def unauthorized() -> Response:
    """CTCT's 401."""
    body = errors.error_object(errors.UNAUTHORIZED_ERROR_KEY, errors.UNAUTHORIZED_MESSAGE)
    return json_response(body, 401)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    value = header.strip()
    # CTCT's docs never show the prefix; accept the JWT with or without it (NOTES Q2).
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


async def partner_caller(state: SandboxState, request: Request) -> Caller | Response:
    """The partner whose API key and partner JWT the request carries (they must match)."""
    api_key = request.headers.get("x-api-key")
    key_partner = state.partner_for_api_key(api_key) if api_key else None
    if api_key is None or key_partner is None:
        return unauthorized()
    token = _bearer(request.headers.get("authorization"))
    token_partner = state.partner_for_token(token) if token else None
    if token_partner is None:
        return unauthorized()
    if token_partner.key != key_partner.key:
        body = errors.error_object(errors.FORBIDDEN_ERROR_KEY, errors.FORBIDDEN_MESSAGE)
        return json_response(body, 403)
    return Caller(api_key, key_partner)


async def user_caller(state: SandboxState, request: Request) -> Caller | Response:
    """The account whose user access token the request carries."""
    token = _bearer(request.headers.get("authorization"))
    grant = state.user_grant(token) if token else None
    account = state.find(grant.encoded_account_id) if grant else None
    if grant is None or account is None:
        return unauthorized()
    return Caller(grant.api_key, account=account)


def _oauth_error(error: str, status: int = 400) -> Response:
    return json_response({"error": error}, status)


async def token_client(state: SandboxState, request: Request) -> Caller | Response:
    """The partner whose client credentials (HTTP Basic) ask the token endpoint for a JWT."""
    if media_type(request) != FORM_MEDIA_TYPE:
        return _oauth_error(errors.UNSUPPORTED_MEDIA_TYPE, 415)
    credentials = _basic_credentials(request.headers.get("authorization"))
    partner = state.partner_for_client(*credentials) if credentials else None
    if partner is None:
        return _oauth_error(errors.INVALID_CLIENT)
    # Token calls are not counted against the API key's limits (NOTES Q3, settled).
    return Caller(None, partner)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    return (client_id, secret) if separator else None


async def issue_token(request: Request, state: SandboxState, caller: Caller) -> Response:
    """`POST /oauth2/token`: a client-credentials grant of a partner JWT."""
    params = dict(request.query_params)
    params.update(parse_qsl((await request.body()).decode("latin-1")))
    if params.get("grant_type") != "client_credentials":
        return _oauth_error(errors.UNSUPPORTED_GRANT_TYPE)
    scope = params.get("scope")
    # Like Cognito, no scope means every scope the client may have; that is this one.
    if scope is not None and set(scope.split()) != {PARTNER_SCOPE}:
        return _oauth_error(errors.INVALID_SCOPE)
    assert caller.partner is not None
    token = state.mint_partner_token(caller.partner)
    body = {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"}
    return json_response(body, headers={"Cache-Control": "no-store"})
