"""Request and response shapes of the clients API, and the one rule for account ids."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic_core import PydanticCustomError

from app.clients.models import ClientStatus, TransferState
from app.errors import FieldError, ValidationFailed
from app.kit.inputs import InputModel, Int32

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACCOUNT_ID_RULE = "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"
NOTE_MAX = 2000


def check_account_id(value: str, field: str = "encoded_account_id") -> str:
    """The id unchanged, or a 400 validation problem naming `field`."""
    if ACCOUNT_ID.fullmatch(value) is None:
        raise ValidationFailed([FieldError(field, ACCOUNT_ID_RULE)])
    return value


def _account_id(value: str) -> str:
    if ACCOUNT_ID.fullmatch(value) is None:
        raise PydanticCustomError("account_id", ACCOUNT_ID_RULE)
    return value


ACCOUNT_ID_SCHEMA: dict[str, JsonValue] = {
    "pattern": f"^{ACCOUNT_ID.pattern}$",
    "minLength": 1,
    "maxLength": 64,
    "examples": ["a07e1lxqqqo0"],
}
AccountId = Annotated[str, AfterValidator(_account_id), Field(json_schema_extra=ACCOUNT_ID_SCHEMA)]
"""An `encoded_account_id` in a request body, held to the one rule."""
AccountIdPath = Annotated[
    str,
    Path(description="CTCT's encoded_account_id", json_schema_extra=ACCOUNT_ID_SCHEMA),
    AfterValidator(_account_id),
]
"""An `encoded_account_id` in a path, held to the one rule (a 400 naming it otherwise)."""


def _note(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise PydanticCustomError("note_blank", "a note is required")
    return stripped


_NOTE_SCHEMA: dict[str, JsonValue] = {"pattern": r"\S"}


class Decision(InputModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"note": "agreed with CTCT partner team", "version": 3}]}
    )

    note: str = Field(
        min_length=1,
        max_length=NOTE_MAX,
        description="why; required",
        json_schema_extra=_NOTE_SCHEMA,
    )
    version: Int32 | None = Field(
        default=None, description="the client's version the decision was made on (409 if stale)"
    )

    _check_note = field_validator("note")(_note)


class NewTransferRequest(InputModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"note": "the owner asked to move under us"}]}
    )

    note: str = Field(
        min_length=1,
        max_length=NOTE_MAX,
        description="why; required",
        json_schema_extra=_NOTE_SCHEMA,
    )

    _check_note = field_validator("note")(_note)


class TransferChange(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"state": "submitted", "note": "sent to CTCT", "version": 1}]
        }
    )

    state: TransferState
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    version: Int32 | None = Field(
        default=None, description="the request's version the change was made on (409 if stale)"
    )


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ClientOut(_Out):
    encoded_account_id: str
    status: ClientStatus
    status_reason: str
    evidence_status: ClientStatus = Field(
        description="what CTCT's evidence alone says (differs from status while a billing "
        "approval stands)"
    )
    verified_at: datetime | None
    verified_via: str | None
    login_name: str | None
    site_owner_name: str | None
    organization_name: str | None
    contact_email: str | None
    billing_status: str | None
    subscriber_count: int | None = Field(description="contacts in the account (partner list)")
    last_login_date: datetime | None = Field(
        description="when the account's owner last logged in (partner list); null if never"
    )
    plan_type: str | None
    encoded_partner_id: str | None = Field(description="empty when CTCT reports no partner")
    created_at: datetime
    updated_at: datetime
    version: int


class StatusEventOut(_Out):
    id: int
    from_status: ClientStatus | None
    to_status: ClientStatus
    reason: str
    source: str
    actor: str | None
    note: str | None
    audit_run_id: int | None
    created_at: datetime


class TransferEventOut(_Out):
    from_state: TransferState | None
    to_state: TransferState
    source: str
    actor: str | None
    note: str | None
    audit_run_id: int | None
    created_at: datetime


class TransferRequestOut(_Out):
    id: int
    encoded_account_id: str
    state: TransferState
    note: str
    requested_by: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int
    history: list[TransferEventOut] = Field(default_factory=list)


class ClientDetail(ClientOut):
    events: list[StatusEventOut]
    transfer_requests: list[TransferRequestOut]
