"""The outcome ladder: what an attempt's answer from CTCT means for its request (no I/O).

An attempt that did not create the account ends in one of two outcomes:

- `RetryLater`: send again after a backoff (not before `not_before` when CTCT or our budget
  says when). When this attempt may have reached CTCT (`may_exist`: a 503, a timeout, a lost
  connection, a 5xx, a 2xx we cannot read) nothing is sent again until a read of our partner
  list that began afterwards says the account is not there (`reads`, `answers`);
- `Finish`: end the request as failed or needs_attention, with the problem a replay answers.

A 409 after an attempt whose outcome is unknown also waits for that read (`after_conflict`):
listed, the account is ours; absent, the login name is someone else's (`taken_and_not_listed`).
Every way back to the queue waits at least a floor with jitter (`backoff_at`): nothing is
rescheduled for "now" in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.ctct.budget_terms import next_utc_midnight
from app.ctct.errors import (
    CtctAuthError,
    CtctBudgetExhausted,
    CtctBudgetTimeout,
    CtctConflict,
    CtctError,
    CtctRateLimited,
    CtctServerError,
    CtctUnavailable,
    CtctValidationError,
    ErrorDetail,
    redact,
)
from app.ctct.provision_rules import PROVISION_FIELDS
from app.db import utcnow
from app.errors import FieldError
from app.kit.backoff import backoff_delay
from app.kit.crypto import PasswordUndecryptable
from app.provisioning.errors import (
    CtctRejectedBody,
    LoginNameTaken,
    ProvisioningExpired,
    ProvisioningNeedsAttention,
)
from app.provisioning.models import RequestState
from app.settings import ProvisionSettings

EndingProblem = LoginNameTaken | CtctRejectedBody | ProvisioningNeedsAttention | ProvisioningExpired


@dataclass(frozen=True)
class RetryLater:
    """Send again later; `may_exist`: this attempt may have created the account; not `sent`:
    it never reached CTCT (our own budget refused it), so it was no attempt."""

    last_error: str
    may_exist: bool = False
    not_before: datetime | None = None
    after_conflict: bool = False
    sent: bool = True


@dataclass(frozen=True)
class Finish:
    """End the request (failed or needs_attention); `problem` is what a replay answers.

    `may_exist`: CTCT may have acted on a send, so a person's retry reconciles first.
    """

    state: RequestState
    problem: EndingProblem
    erase_password: bool
    result: dict[str, object] | None = None
    may_exist: bool = False


Outcome = RetryLater | Finish


def of_failure(
    exc: CtctError | TimeoutError, *, password: str | None, attempt_bound: float
) -> Outcome:
    """The ladder: the outcome of a create call CTCT answered with an error (409 aside)."""
    if isinstance(exc, CtctValidationError):
        errors = [_field_error(detail, password) for detail in exc.errors] or [
            FieldError("body", scrub(exc.message, password))
        ]
        return Finish(
            RequestState.FAILED,
            CtctRejectedBody(errors),
            erase_password=True,
            result={"ctct_errors": [dict(error) for error in errors]},
        )
    if isinstance(exc, CtctRateLimited):
        not_before = next_utc_midnight(utcnow()) if exc.kind == "quota_exceeded" else None
        return RetryLater(scrub(str(exc), password), not_before=not_before)
    if isinstance(exc, CtctBudgetExhausted):
        return RetryLater(str(exc), not_before=exc.resets_at)
    if isinstance(exc, CtctBudgetTimeout):
        return RetryLater(str(exc), sent=False)
    if isinstance(exc, CtctUnavailable):
        return RetryLater(scrub(str(exc), password), may_exist=exc.request_may_have_been_processed)
    if isinstance(exc, TimeoutError):
        return RetryLater(f"no answer within {attempt_bound:g}s; outcome unknown", may_exist=True)
    if isinstance(exc, CtctServerError) and (exc.should_retry or exc.answered_success):
        # A 5xx, or a 2xx whose body we cannot read: CTCT may well have created the account.
        return RetryLater(scrub(str(exc), password), may_exist=True)
    if isinstance(exc, CtctAuthError):
        # Our credentials were refused before anything was created; an operator must fix them.
        return RetryLater(scrub(str(exc), password))
    return unexpected(exc, password)


def login_name_taken(login_name: str, exc: CtctConflict, password: str | None) -> Finish:
    """A 409 to a first send (nothing of ours can exist yet): the login name is someone's."""
    return Finish(
        RequestState.FAILED,
        LoginNameTaken(f"The login name {login_name!r} is already taken at CTCT."),
        erase_password=True,
        result={"ctct_errors": _details(exc.errors, password)},
    )


def conflict_after_unknown(exc: CtctConflict, password: str | None) -> RetryLater:
    """A 409 after an attempt whose outcome is unknown: maybe ours; our partner list decides."""
    return RetryLater(
        f"CTCT says the login name is taken after an earlier attempt whose outcome is unknown "
        f"({scrub(str(exc), password)})",
        may_exist=True,
        after_conflict=True,
    )


def taken_and_not_listed() -> Finish:
    """A 409 after an attempt whose outcome is unknown, and our partner list lacks the login."""
    return Finish(
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            "CTCT says the login name is taken, after an earlier attempt whose outcome is "
            "unknown, and no account with that login name is in our partner list: it may "
            "belong to someone else, or CTCT may still be creating ours. A person must check."
        ),
        erase_password=False,
        may_exist=True,
    )


def gave_up_unchecked(*, max_age: timedelta, error: str) -> Finish:
    """PROVISION_MAX_AGE has passed while the partner list could not be read to check."""
    return Finish(
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            f"Gave up after PROVISION_MAX_AGE ({max_age}); an earlier attempt may have "
            f"reached CTCT, and our partner list could not be read to check ({error}). "
            "A person must check."
        ),
        erase_password=False,
        may_exist=True,
    )


def gave_up(*, may_exist: bool, max_age: timedelta) -> Finish:
    """PROVISION_MAX_AGE has passed."""
    if may_exist:
        return Finish(
            RequestState.NEEDS_ATTENTION,
            ProvisioningNeedsAttention(
                f"Gave up after PROVISION_MAX_AGE ({max_age}); an earlier attempt may have "
                "reached CTCT, but the account is not in our partner list. CTCT may still "
                "create it; a person must check."
            ),
            erase_password=False,
            may_exist=True,
        )
    return Finish(
        RequestState.FAILED,
        ProvisioningExpired(
            f"Gave up after PROVISION_MAX_AGE ({max_age}); CTCT never accepted the request, "
            "so no account was created."
        ),
        erase_password=False,
    )


def undecryptable(exc: PasswordUndecryptable) -> Finish:
    """The stored password cannot be read with the configured keys."""
    return Finish(
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            f"{exc}; configure the retired key in PROVISION_ENCRYPTION_KEYS and retry"
        ),
        erase_password=False,
    )


def unexpected(exc: CtctError, password: str | None) -> Finish:
    """An answer we cannot interpret: a person must look."""
    return Finish(
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            f"CTCT answered in a way we cannot interpret: {scrub(str(exc), password)}"
        ),
        erase_password=False,
        may_exist=True,
    )


def backoff_at(attempt: int, settings: ProvisionSettings, *, now: datetime) -> datetime:
    """`now` plus the backoff after attempt `attempt`: jittered, capped, never under the floor
    (half the base), so no way back to the queue is ever "now"."""
    delay = backoff_delay(
        max(attempt - 1, 0),
        base=settings.retry_base_seconds,
        cap=settings.retry_cap_seconds,
        floor=floor_seconds(settings),
    )
    return now + timedelta(seconds=delay)


def floor_seconds(settings: ProvisionSettings) -> float:
    """The least time anything waits before it is tried again."""
    return settings.retry_base_seconds / 2


def next_attempt_at(
    retry: RetryLater,
    *,
    attempt: int,
    deadline_at: datetime,
    settings: ProvisionSettings,
    now: datetime | None = None,
) -> datetime:
    """When to send again: a backoff after attempt `attempt`, not before `retry.not_before`,
    not past the deadline (the attempt then gives up), and never sooner than the floor."""
    now = now or utcnow()
    at = backoff_at(attempt, settings, now=now)
    if retry.not_before is not None and retry.not_before.astimezone(UTC) > at:
        at = retry.not_before.astimezone(UTC)
    return max(min(at, deadline_at), now + timedelta(seconds=floor_seconds(settings)))


def scrub(text: str, password: str | None) -> str:
    """CTCT's messages echo what we sent; a password in one never gets stored or shown."""
    return redact(text, (password,)) if password else text


def _field_error(detail: ErrorDetail, password: str | None) -> FieldError:
    message = scrub(detail.error_message, password)
    name, separator, rest = message.partition(":")
    if separator and name.strip() in PROVISION_FIELDS:
        return FieldError(name.strip(), rest.strip())
    return FieldError("body", message)


def _details(errors: tuple[ErrorDetail, ...], password: str | None) -> list[dict[str, str | None]]:
    return [
        {"error_key": error.error_key, "error_message": scrub(error.error_message, password)}
        for error in errors
    ]
