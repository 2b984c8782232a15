"""Domain errors and the one RFC 9457 problem handler.

AppError                      status, stable problem `type`, title, detail
├── BadRequest                400  (ValidationFailed adds `errors: [{field, message}]`)
├── Unauthorized              401
├── Forbidden                 403
├── NotFound                  404
├── Conflict                  409
├── UnprocessableEntity       422
├── UpstreamUnavailable       503  (CTCT could not answer and nothing sensible can be served)
├── DatabaseBusy              503  (every pooled connection stayed busy; Retry-After: 1)
├── DatabaseUnavailable       503  (the database cannot be reached; Retry-After: 5)

Framework errors (unknown route, wrong method, malformed JSON, request validation) are rendered
in the same format. A database this process cannot use right now (every pooled connection busy
past DATABASE_POOL_TIMEOUT, or the server unreachable) is the server's trouble, not the caller's:
503 with Retry-After. A bug is still a 500, rendered as a problem without internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"
# The pydantic error type of `app.kit.inputs.RowId`: a path id no row can have (404, not 400).
ROW_ID_ERROR = "row_id_out_of_range"
PROBLEM_BASE = "https://partnergate.dev/problems/"

log = structlog.get_logger(__name__)

# A route's `responses=`: error statuses need only a description (`app.openapi` adds the rest).
Responses = dict[int | str, dict[str, Any]]


class ProblemFieldError(BaseModel):
    """One entry of a problem's `errors`: which field, and what is wrong with it."""

    field: str = Field(description="the field, dotted for nested ones (`account_ids.3`)")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem (`application/problem+json`); more members may be present."""

    model_config = ConfigDict(
        extra="allow",
        title="Problem",
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + "validation-error",
                    "title": "The request is not valid",
                    "status": 400,
                    "detail": "1 field failed validation",
                    "instance": "/v1/accounts",
                    "errors": [{"field": "login_name", "message": "is required"}],
                }
            ]
        },
    )

    type: str = Field(description="a stable URI naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str = Field(default="", description="the request path, where given")
    errors: list[ProblemFieldError] = Field(
        default_factory=list, description="for a validation problem: every field error at once"
    )


class FieldError(dict[str, str]):
    """One `{field, message}` entry of a validation problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field=field, message=message)


class AppError(Exception):
    """An expected failure that becomes a problem response."""

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type_slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(AppError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    type_slug = "validation-error"
    title = "The request is not valid"

    def __init__(self, errors: Sequence[FieldError], detail: str | None = None) -> None:
        count = len(errors)
        super().__init__(
            detail or f"{count} field{'s' if count != 1 else ''} failed validation",
            extra={"errors": list(errors)},
        )
        self.errors = list(errors)


class Unauthorized(AppError):
    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    type_slug = "forbidden"
    title = "Not allowed"


class NotFound(AppError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class UnprocessableEntity(AppError):
    status = 422
    type_slug = "unprocessable"
    title = "Unprocessable request"


class UpstreamUnavailable(AppError):
    status = 503
    type_slug = "upstream-unavailable"
    title = "Constant Contact is unavailable"


class DatabaseBusy(AppError):
    status = 503
    type_slug = "database-busy"
    title = "Service busy"

    def __init__(self) -> None:
        super().__init__(
            "Every database connection is in use; try again shortly.",
            headers={"Retry-After": "1"},
        )


class DatabaseUnavailable(AppError):
    status = 503
    type_slug = "database-unavailable"
    title = "Service unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The database cannot be reached right now; try again shortly.",
            headers={"Retry-After": "5"},
        )


def problem_response(
    status: int,
    *,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    body = exc.problem(instance=request.url.path)
    return JSONResponse(
        body, status_code=exc.status, headers=exc.headers, media_type=PROBLEM_CONTENT_TYPE
    )


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    malformed = [err for err in exc.errors() if err.get("type") == "json_invalid"]
    if malformed:
        return problem_response(
            400,
            slug="malformed-json",
            title="Malformed JSON",
            detail="The request body is not valid JSON.",
        )
    errors = [
        FieldError(_location(err.get("loc", ())), str(err.get("msg", "invalid")))
        for err in exc.errors()
    ]
    unnamed = [err for err in exc.errors() if err.get("type") == ROW_ID_ERROR]
    if unnamed:
        # A path id outside its column's range cannot name a row: the resource does not exist.
        fields = [FieldError(_location(err.get("loc", ())), str(err["msg"])) for err in unnamed]
        return problem_response(
            404,
            slug="not-found",
            title="Not found",
            detail=f"No {fields[0]['field']} {unnamed[0].get('input')} exists.",
            extra={"errors": fields},
        )
    return problem_response(
        400,
        slug="validation-error",
        title="The request is not valid",
        detail=f"{len(errors)} field{'s' if len(errors) != 1 else ''} failed validation",
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
        status, phrase.lower().replace(" ", "-")
    )
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    if status == 404 and detail == "Not Found":
        detail = f"No route matches {request.url.path}."
    if status == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(
        status,
        slug=slug,
        title=phrase,
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database this process cannot use right now, as the matching 503 problem."""
    busy = isinstance(exc, PoolTimeout)
    log.warning(
        "http.request.database_busy" if busy else "http.request.database_unavailable",
        path=request.url.path,
        error_type=type(exc).__name__,
    )
    return await _app_error(request, DatabaseBusy() if busy else DatabaseUnavailable())


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("http.request.crashed", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        500,
        slug="internal-error",
        title="Internal Server Error",
        detail="The server failed to handle the request; it has been logged.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can produce as application/problem+json."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (PoolTimeout, OperationalError, InterfaceError):
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(Exception, _unhandled_error)
