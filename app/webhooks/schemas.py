"""What the webhook endpoints take and return: deliveries and subscribers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from app.kit.inputs import InputModel
from app.webhooks.models import EVERY_EVENT_TYPE, EventType


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    event_type: str
    url: str
    subscriber_id: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    last_status_code: int | None
    last_response: str | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")
URL_MAX = 2000


class SubscriberOut(BaseModel):
    """A subscriber as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    event_types: list[str] = Field(description="event types it receives; `*` is every type")
    source: str = Field(description="`api`, `cli`, or `env` (seeded from WEBHOOK_URLS)")
    consecutive_failures: int
    failing_since: datetime | None
    last_delivered_at: datetime | None
    previous_secret_until: datetime | None = Field(
        description="until when deliveries also carry a signature with the previous secret"
    )
    created_by: str | None
    created_at: datetime


class SubscriberWithSecret(SubscriberOut):
    secret: str = Field(description="the Standard Webhooks secret: shown this once only")


_EVENT_TYPE_NAMES = [event_type.value for event_type in EventType] + [EVERY_EVENT_TYPE]
EventTypeName = Annotated[str, WithJsonSchema({"type": "string", "enum": _EVENT_TYPE_NAMES})]


class NewSubscriber(InputModel):
    """Who receives which events."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "pager", "url": "https://hooks.example.com/pg", "event_types": ["*"]}
            ]
        }
    )

    # The rule is `_name`'s (one message); the schema says the same for clients and fuzzers.
    name: str = Field(
        description="unique among live subscribers; letters, digits, . _ : @ / -",
        json_schema_extra={"pattern": f"^{_NAME.pattern}$", "minLength": 1, "maxLength": 200},
    )
    url: str = Field(max_length=URL_MAX, description="an http(s) URL events are POSTed to")
    event_types: list[EventTypeName] = Field(
        min_length=1,
        max_length=len(_EVENT_TYPE_NAMES),
        description="event types to receive, or `*` for every type",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if _NAME.fullmatch(value) is None:
            raise ValueError("must be 1-200 characters: letters, digits, . _ : @ / - (no spaces)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return check_event_types(value)


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host, without credentials (ValueError otherwise)."""
    parsed = urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parsed.username or parsed.password:
        raise ValueError("must not carry credentials")
    return value.strip()


def check_event_types(values: list[str]) -> list[str]:
    """Known event types (or `*`), each once (ValueError naming the unknown ones)."""
    known = {event_type.value for event_type in EventType} | {EVERY_EVENT_TYPE}
    unknown = sorted({value for value in values if value not in known})
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(values))
