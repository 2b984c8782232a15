"""Problems the provisioning endpoints answer with (each carries its status and type)."""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import (
    BadRequest,
    Conflict,
    FieldError,
    NotFound,
    UnprocessableEntity,
    ValidationFailed,
)


class IdempotencyKeyInvalid(BadRequest):
    type_slug = "idempotency-key-invalid"
    title = "A valid Idempotency-Key header is required"


class IdempotencyKeyReused(UnprocessableEntity):
    type_slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used with another body"


class CtctRejectedBody(ValidationFailed):
    type_slug = "ctct-validation-error"
    title = "Constant Contact rejected the account"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__(errors, detail="Constant Contact rejected the create request.")


class LoginNameTaken(Conflict):
    type_slug = "login-name-taken"
    title = "The login name is taken"


class ProvisioningNeedsAttention(Conflict):
    type_slug = "provisioning-needs-attention"
    title = "The outcome of provisioning needs a person to look"


class ProvisioningExpired(Conflict):
    type_slug = "provisioning-expired"
    title = "Provisioning gave up"


class RequestNotFound(NotFound):
    type_slug = "provisioning-request-not-found"
    title = "No such provisioning request"


class RetryNotPossible(Conflict):
    type_slug = "provisioning-retry-not-possible"
    title = "This request cannot be retried"


class AccountNotOurs(Conflict):
    type_slug = "account-not-ours"
    title = "The account belongs to another partner"


class AccountUnknown(NotFound):
    type_slug = "account-not-found"
    title = "Constant Contact does not know this account"


class CtctRejectedPlan(BadRequest):
    type_slug = "ctct-rejected"
    title = "Constant Contact rejected the change"
