"""Errors raised by the CTCT client, one class per outcome a caller handles differently.

CtctError                    status (int | None), should_retry, error_key, errors, operation
├── CtctUnavailable          503, timeouts, connection errors; `reason` says which
├── CtctRateLimited          429 from CTCT; `kind` is "throttled" (retry) or "quota_exceeded"
├── CtctValidationError      400 with the parsed `[{error_key, error_message}]`
├── CtctNotOurs              400 on an account-scoped call: the account belongs to another partner
├── CtctConflict             409 (e.g. the login name is taken)
├── CtctNotFound             404 (e.g. an unknown encoded_account_id)
├── CtctAuthError            401/403 after the one token renewal; token endpoint refusals
├── CtctServerError          other 5xx, unexpected statuses and unreadable success bodies
├── CtctBudgetExhausted      our own daily budget is spent for this priority (no call was made)
└── CtctBudgetTimeout        our shared rate limit would make the call wait past its deadline

An error never carries a secret, a token or the request body: only the status, CTCT's error keys
and (truncated) messages, the operation name and, where useful, the account id. A secret the call
sent (a client's password) is redacted from CTCT's messages before anything else touches them:
collapsing whitespace or cutting a message at its limit first would let it (or a piece of it)
through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

MAX_MESSAGE_CHARS = 300
REDACTED = "[redacted]"
NOT_OURS_ERROR_KEYS = frozenset({"partner.account.not_managed"})
_NOT_OURS_MESSAGE = re.compile(
    r"(another|different|other)\s+partner|not\s+managed\s+by|not\s+under\s+(your|this)\s+partner",
    re.IGNORECASE,
)

UnavailableReason = Literal["unavailable", "timeout", "connect", "connection_lost"]
RateLimitKind = Literal["throttled", "quota_exceeded"]


@dataclass(frozen=True)
class ErrorDetail:
    """One `{error_key, error_message}` entry of a CTCT error body."""

    error_key: str | None
    error_message: str


class CtctError(Exception):
    """Base of every error the CTCT client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: tuple[ErrorDetail, ...] = (),
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        self.operation = operation

    @property
    def should_retry(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return False

    @property
    def request_may_have_been_processed(self) -> bool:
        """Whether CTCT may have acted on the request (a create may have created the account)."""
        return False

    @property
    def error_key(self) -> str | None:
        """The first error key CTCT sent, if any."""
        return next((e.error_key for e in self.errors if e.error_key), None)

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.message}{status}"


class CtctUnavailable(CtctError):
    """CTCT did not answer usefully: 503, a timeout, or a connection failure."""

    def __init__(
        self,
        message: str,
        *,
        reason: UnavailableReason = "unavailable",
        status: int | None = None,
        errors: tuple[ErrorDetail, ...] = (),
        operation: str | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors, operation=operation)
        self.reason: UnavailableReason = reason

    @property
    def should_retry(self) -> bool:
        """CTCT may answer a moment later."""
        return True

    @property
    def request_may_have_been_processed(self) -> bool:
        """False only when the request provably never reached CTCT (connection refused)."""
        return self.reason != "connect"


class CtctRateLimited(CtctError):
    """CTCT answered 429; `kind` says whether it was the per-second or the daily limit."""

    def __init__(
        self,
        message: str,
        *,
        kind: RateLimitKind,
        status: int | None = 429,
        errors: tuple[ErrorDetail, ...] = (),
        operation: str | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors, operation=operation)
        self.kind: RateLimitKind = kind

    @property
    def should_retry(self) -> bool:
        """Throttling passes within a second; the daily quota only at 00:00 UTC."""
        return self.kind == "throttled"


class CtctValidationError(CtctError):
    """CTCT rejected the request's content (400); `errors` lists every problem."""


class CtctNotOurs(CtctError):
    """The account exists but belongs to another partner (400 on an account-scoped call)."""

    def __init__(
        self,
        message: str,
        *,
        encoded_account_id: str,
        status: int | None = 400,
        errors: tuple[ErrorDetail, ...] = (),
        operation: str | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors, operation=operation)
        self.encoded_account_id = encoded_account_id


class CtctConflict(CtctError):
    """The request conflicts with an existing resource (409)."""


class CtctNotFound(CtctError):
    """The resource (usually the account) does not exist for us (404)."""


class CtctAuthError(CtctError):
    """Our credentials (or a user's token) were refused."""


class CtctServerError(CtctError):
    """A 5xx other than 503, an unexpected status, or a body we cannot read."""

    @property
    def should_retry(self) -> bool:
        """Server-side failures may pass; anything else will not."""
        return self.status is not None and self.status >= 500

    @property
    def answered_success(self) -> bool:
        """CTCT answered 2xx, with a body we could not read: it did what we asked."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def request_may_have_been_processed(self) -> bool:
        """A 5xx, a 2xx we cannot read, an unexpected status: CTCT may have acted."""
        return True


class CtctBudgetExhausted(CtctError):
    """Our daily CTCT budget is spent for this priority; no call was made."""

    def __init__(self, message: str, *, resets_at: datetime, priority: str) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.priority = priority


class CtctBudgetTimeout(CtctError):
    """The shared rate limit would delay this call past the caller's deadline; none was made."""

    def __init__(self, message: str, *, wait_seconds: float) -> None:
        super().__init__(message)
        self.wait_seconds = wait_seconds

    @property
    def should_retry(self) -> bool:
        """The budget frees up within seconds."""
        return True


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced, also where its whitespace was collapsed or changed."""
    for secret in secrets:
        words = secret.split()
        if not words:
            continue
        pattern = r"\s+".join(re.escape(word) for word in words)
        text = re.sub(pattern, REDACTED, text)
    return text


def _truncate(text: str, secrets: Sequence[str] = ()) -> str:
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _detail(item: dict[str, object], secrets: Sequence[str]) -> ErrorDetail | None:
    key = item.get("error_key")
    message = item.get("error_message")
    if key is None and message is None:
        oauth_error = item.get("error")
        if oauth_error is None:
            return None
        key = oauth_error
        message = item.get("error_description") or oauth_error
    return ErrorDetail(
        error_key=redact(str(key), secrets) if key is not None else None,
        error_message=_truncate(str(message if message is not None else key), secrets),
    )


def parse_error_body(content: bytes, secrets: Sequence[str] = ()) -> tuple[ErrorDetail, ...]:
    """Read any CTCT error body: an array of objects, one object, OAuth2 `{"error"}`, or text.

    `secrets` (what the call sent that must never be kept) are redacted first.
    """
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return ()
    try:
        parsed: object = json.loads(text)
    except ValueError:
        return (ErrorDetail(error_key=None, error_message=_truncate(text, secrets)),)
    items = parsed if isinstance(parsed, list) else [parsed]
    details: list[ErrorDetail] = []
    for item in items:
        if isinstance(item, dict):
            detail = _detail(item, secrets)
            if detail is not None:
                details.append(detail)
        elif isinstance(item, str):
            details.append(ErrorDetail(error_key=None, error_message=_truncate(item, secrets)))
    return tuple(details)


def _is_not_ours(errors: tuple[ErrorDetail, ...]) -> bool:
    return any(
        e.error_key in NOT_OURS_ERROR_KEYS or _NOT_OURS_MESSAGE.search(e.error_message)
        for e in errors
    )


def _summary(errors: tuple[ErrorDetail, ...], fallback: str) -> str:
    return "; ".join(e.error_message for e in errors) or fallback


def error_from_response(
    status: int,
    content: bytes,
    *,
    operation: str,
    encoded_account_id: str | None = None,
    secrets: Sequence[str] = (),
) -> CtctError:
    """The error for a non-success CTCT response; `encoded_account_id` marks account calls,
    `secrets` are redacted from CTCT's messages before they are cut."""
    errors = parse_error_body(content, secrets)
    if status == 400:
        if encoded_account_id is not None and _is_not_ours(errors):
            return CtctNotOurs(
                _summary(errors, "the account belongs to another partner"),
                encoded_account_id=encoded_account_id,
                status=status,
                errors=errors,
                operation=operation,
            )
        return CtctValidationError(
            _summary(errors, "CTCT rejected the request"),
            status=status,
            errors=errors,
            operation=operation,
        )
    if status in (401, 403):
        return CtctAuthError(
            _summary(errors, "CTCT refused our credentials"),
            status=status,
            errors=errors,
            operation=operation,
        )
    if status == 404:
        return CtctNotFound(
            _summary(errors, "not found"), status=status, errors=errors, operation=operation
        )
    if status == 409:
        return CtctConflict(
            _summary(errors, "conflict with an existing resource"),
            status=status,
            errors=errors,
            operation=operation,
        )
    if status == 429:
        keys = {e.error_key for e in errors}
        kind: RateLimitKind = "quota_exceeded" if "quota_exceeded" in keys else "throttled"
        return CtctRateLimited(
            _summary(errors, "rate limited"), kind=kind, errors=errors, operation=operation
        )
    if status == 503:
        return CtctUnavailable(
            _summary(errors, "CTCT is temporarily unavailable"),
            reason="unavailable",
            status=status,
            errors=errors,
            operation=operation,
        )
    return CtctServerError(
        _summary(errors, f"unexpected HTTP {status}"),
        status=status,
        errors=errors,
        operation=operation,
    )
