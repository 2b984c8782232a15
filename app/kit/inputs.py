"""Input types for the edge: every value a request carries is typed and bounded where it enters.

- `InputModel`: the base of every request body. Unknown fields are refused, and before any field
  is read every string in the raw body (keys included) is checked: U+0000 cannot be stored in a
  Postgres `text` or `jsonb` value, and a lone surrogate (`"\\ud800"`) is not text at all (it has
  no UTF-8 form). Each offending string is a 400 problem naming its field.
- `Text`: the same check for a query or path string (`Annotated[str, Query(...), Text]`).
- `RowId`: a path id of a `bigint` column. Outside 1..2^63-1 it names nothing: 404, not 400.
- `Int32`: an integer bound for an `int4` column or a CTCT `int32` field.
- `ZonedDatetime`: a date-time with a UTC offset that has a UTC equivalent, held in UTC.
- `BEARER_VALUE`: what a value sent on as `Authorization: Bearer <value>` may be (ASCII only).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from app.errors import ROW_ID_ERROR

BIGINT_MAX = 2**63 - 1
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# Not a U+0000: JSON Schema (ECMA-262) and Python read the escape alike.
NO_NUL_PATTERN = r"^[^\u0000]*$"
TEXT_ERROR = "text_not_storable"

Loc = tuple[int | str, ...]


def text_problem(value: str) -> str | None:
    """Why `value` cannot be taken as text, or None when it can."""
    if "\x00" in value:
        return "must not contain the NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it contains a lone surrogate)"
    return None


def _text_problems(value: object, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield loc, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            key_problem = text_problem(key) if isinstance(key, str) else None
            if key_problem is not None:
                yield (*loc, "(key)"), f"a field name {key_problem}"
                continue
            yield from _text_problems(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_problems(item, (*loc, index))


def _printable(loc: Loc) -> Loc:
    # A field name that is itself not text cannot be echoed back in a problem.
    return tuple(
        part if not isinstance(part, str) or text_problem(part) is None else "?" for part in loc
    )


def problems_error(title: str, problems: list[tuple[Loc, str, str]]) -> ValidationError:
    """One `ValidationError` carrying every `(loc, error type, message)` at once."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{message}", {"message": message}),
                loc=_printable(loc),
                input=None,
            )
            for loc, kind, message in problems
        ],
    )


class InputModel(BaseModel):
    """A request body: unknown fields refused, every string storable text (see the module)."""

    model_config = ConfigDict(extra="forbid")

    input_title: ClassVar[str] = "request body"

    @classmethod
    def raw_problems(cls, data: object) -> list[tuple[Loc, str, str]]:
        """What is wrong with the raw body before its fields are read (subclasses add rules)."""
        return [(loc, TEXT_ERROR, message) for loc, message in _text_problems(data)]

    @model_validator(mode="wrap")
    @classmethod
    def _checked_at_the_edge(cls, data: object, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if isinstance(data, cls):
            return handler(data)
        problems = cls.raw_problems(data)
        if problems:
            raise problems_error(cls.__name__, problems)
        return handler(data)


class _StorableText:
    """`Annotated[str, ..., Text]`: refuses NUL and lone surrogates before `str` validation."""

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        for member in [json_schema, *json_schema.get("anyOf", [])]:
            if member.get("type") == "string" and "enum" not in member:
                member.setdefault("pattern", NO_NUL_PATTERN)
        return json_schema


def _storable(value: object) -> object:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError(TEXT_ERROR, "{message}", {"message": problem})
    return value


Text = _StorableText()


def _row_id(value: int) -> int:
    if not 1 <= value <= BIGINT_MAX:
        raise PydanticCustomError(
            ROW_ID_ERROR, "names nothing: ids run from 1 to {maximum}", {"maximum": BIGINT_MAX}
        )
    return value


RowId = Annotated[
    int,
    Path(
        json_schema_extra={"minimum": 1, "maximum": BIGINT_MAX, "format": "int64"},
        examples=[1],
    ),
    AfterValidator(_row_id),
]
"""A path id of a bigint column; out of range it is a 404 (see `app.errors`)."""

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX, json_schema_extra={"format": "int32"})]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "is outside the range of dates that can be held"
        ) from None


ZonedDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A date-time with an offset (`Z` or `+02:00`); a naive one is a 400 naming the field."""

# RFC 6750 b64token: all that may follow `Bearer ` in an Authorization header (ASCII only).
BEARER_VALUE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
