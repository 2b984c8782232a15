"""The OpenAPI document, made as precise as the app: problems, status codes, security, webhooks.

FastAPI documents what it reads from each route's signature. `install_openapi` adds what the app
does around the routes, for every operation, present and future:

- every error response is `application/problem+json` with the `Problem` schema (its `errors`
  extension included); FastAPI's own `422 HTTPValidationError`, which this app never sends
  (validation errors are 400 problems), is removed;
- 400 wherever a parameter or a body is read; 401 and 403 wherever an API key is required (the
  security requirement names the scope, as OpenAPI 3.1 allows for non-OAuth schemes); 413
  wherever a body is read (`BodyLimitMiddleware`);
- headers a route checks itself but needs (`Idempotency-Key`) are marked required;
- the events partnergate sends out (`app.webhooks.docs`, the document's OpenAPI 3.1 `webhooks`)
  answer no 422 either.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.errors import PROBLEM_CONTENT_TYPE, Problem
from app.membership.schemas import CtctNotification

REQUIRED_HEADERS = frozenset({"Idempotency-Key"})
_REF = "#/components/schemas/{model}"
_PROBLEM_REF = "#/components/schemas/Problem"
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_DOCUMENT_ONLY: tuple[type[BaseModel], ...] = (Problem, CtctNotification)
_STANDARD = {
    "400": "invalid input: the problem's `errors` name every field at fault",
    "401": "no API key, or an unknown or revoked one",
    "403": "the API key lacks the scope this operation requires",
    "413": "the request body is larger than MAX_BODY_BYTES",
}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the precise document (call after the routes are added)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = precise(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def precise(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the additions described in the module docstring."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = models_json_schema(
        [(model, "validation") for model in _DOCUMENT_ONLY], ref_template=_REF
    )
    schemas.update(definitions.get("$defs", {}))
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _METHODS:
                _precise_operation(operation)
    for path_item in document.get("webhooks", {}).values():
        for method, operation in path_item.items():
            if method in _METHODS:
                operation.get("responses", {}).pop("422", None)
    if not _mentions(document, _FASTAPI_422):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def _precise_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    fastapi_422 = responses.get("422")
    if fastapi_422 is not None and _mentions(fastapi_422, _FASTAPI_422):
        del responses["422"]
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        if parameter.get("in") == "header" and parameter.get("name") in REQUIRED_HEADERS:
            parameter["required"] = True
    added: list[str] = []
    if parameters or "requestBody" in operation:
        added.append("400")
    if any(requirement for requirement in operation.get("security", [])):
        added += ["401", "403"]
    if "requestBody" in operation:
        added.append("413")
    for status in added:
        responses.setdefault(status, {"description": _STANDARD[status]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response.setdefault("description", HTTPStatus(int(status)).phrase)
            response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}
    operation["responses"] = dict(sorted(responses.items()))


def _mentions(value: object, ref: str) -> bool:
    if isinstance(value, dict):
        return value.get("$ref") == ref or any(_mentions(item, ref) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, ref) for item in value)
    return False
