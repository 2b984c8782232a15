"""Forms: a posted form validated by a pydantic model, each error kept beside its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from app.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

Errors = dict[str, str]
Values = dict[str, str]


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a field of this form"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def values_of(form: FormData) -> Values:
    """The form's text fields (the CSRF token left out)."""
    return {
        key: value
        for key, value in form.multi_items()
        if isinstance(value, str) and key != "csrf_token"
    }


def parse(model: type[M], form: FormData) -> tuple[M | None, Errors, Values]:
    """The validated model, or None with a message per field; the values, to show them again."""
    values = values_of(form)
    try:
        return model.model_validate(values), {}, values
    except ValidationError as exc:
        errors: Errors = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, _message(error))
        return None, errors, values


def field_errors(exc: ValidationFailed) -> Errors:
    """A service's validation problem as a message per field."""
    errors: Errors = {}
    for error in exc.errors:
        errors.setdefault(error["field"], error["message"])
    return errors


def checked(parse_one: Callable[[], T], errors: Errors, default: T) -> T:
    """Run one of a service's parsers; its field error joins `errors` and `default` stands in."""
    try:
        return parse_one()
    except ValidationFailed as exc:
        for field, message in field_errors(exc).items():
            errors.setdefault(field, message)
        return default


def prefixed(errors: Errors, name: str) -> Errors:
    """Errors of the form `name` on a page with several forms: `approve.note`."""
    return {f"{name}.{field}": message for field, message in errors.items()}


class SignInForm(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    next: str | None = None
