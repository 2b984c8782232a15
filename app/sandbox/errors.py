"""CTCT's error bodies as the sandbox sends them; the keys are shared with our client.

CTCT documents no partner-specific `error_key` values (NOTES §7 Q4). These are the sandbox's
settled choices; the client recognises "not ours" by `NOT_MANAGED_ERROR_KEY` and a 400.
Most errors are an array of `{error_key, error_message}`; auth and rate-limit errors are one
object, and the token endpoint answers OAuth2 style `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

UNAUTHORIZED_ERROR_KEY = "unauthorized"
UNAUTHORIZED_MESSAGE = "Unauthorized"
FORBIDDEN_ERROR_KEY = "forbidden"
FORBIDDEN_MESSAGE = "The API key does not belong to the partner of the token."

VALIDATION_ERROR_KEY = "partner.account.validation"
MALFORMED_JSON_ERROR_KEY = "partner.request.malformed_json"
UNSUPPORTED_MEDIA_TYPE_ERROR_KEY = "partner.request.unsupported_media_type"
CONFLICT_ERROR_KEY = "partner.account.conflict"
LOGIN_TAKEN_MESSAGE = "login_name is already in use"
NOT_FOUND_ERROR_KEY = "partner.account.not_found"
NOT_FOUND_MESSAGE = "The account does not exist."
NOT_MANAGED_ERROR_KEY = "partner.account.not_managed"
NOT_MANAGED_MESSAGE = "The account belongs to another partner."
PLAN_ERROR_KEY = "partner.plan.invalid"
ROUTE_NOT_FOUND_ERROR_KEY = "resource.not_found"
METHOD_NOT_ALLOWED_ERROR_KEY = "method.not_allowed"

UNAVAILABLE_ERROR_KEY = "partner.service.unavailable"
UNAVAILABLE_MESSAGE = "Dependencies unavailable"
SERVER_ERROR_KEY = "server.error"
SERVER_ERROR_MESSAGE = "There was a problem with our internal service."
TIMEOUT_ERROR_KEY = "gateway.timeout"

THROTTLED_ERROR_KEY = "throttled"
THROTTLED_MESSAGE = "Too Many Requests"
QUOTA_EXCEEDED_ERROR_KEY = "quota_exceeded"
QUOTA_EXCEEDED_MESSAGE = "Limit Exceeded"

INVALID_CLIENT = "invalid_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


def error_list(key: str, *messages: str) -> list[dict[str, Any]]:
    """CTCT's usual error body: an array with one `{error_key, error_message}` per message."""
    return [{"error_key": key, "error_message": message} for message in messages]


def error_object(key: str, message: str) -> dict[str, Any]:
    """The single-object form CTCT uses for auth and rate-limit errors."""
    return {"error_key": key, "error_message": message}


class InvalidInput(ValueError):
    """A value the sandbox refuses (a control-API caller's mistake, not a bug)."""
