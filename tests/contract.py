"""CTCT's published contract (Swagger 2.0) as a test oracle: validate bodies against it.

The file lives beside the repository at `../shared/upstream/constant-contact-v3-openapi.yml`.
Without it, tests that need it fail in CI and are skipped elsewhere.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACT_PATH = REPO_ROOT.parent / "shared" / "upstream" / "constant-contact-v3-openapi.yml"
BASE_PATH = "/v3"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as stream:
        spec: dict[str, Any] = yaml.load(stream, Loader=_Loader)
    return spec


def contract() -> dict[str, Any]:
    """The parsed contract, loaded once; fails in CI and skips elsewhere when it is missing."""
    if not CONTRACT_PATH.is_file():
        message = f"CTCT contract not found at {CONTRACT_PATH}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return _load(CONTRACT_PATH)


@functools.cache
def _validator(schema_key: str) -> jsonschema.Draft4Validator:
    spec = contract()
    schema: dict[str, Any] = {"$ref": schema_key, "definitions": spec["definitions"]}
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def validate_definition(name: str, instance: object) -> None:
    """Raise `jsonschema.ValidationError` unless `instance` conforms to `definitions/<name>`."""
    if name not in contract()["definitions"]:
        raise KeyError(f"the contract has no definition {name!r}")
    _validator(f"#/definitions/{name}").validate(instance)


def _operation(path: str, method: str) -> dict[str, Any]:
    spec_path = path.removeprefix(BASE_PATH) if path.startswith(BASE_PATH + "/") else path
    paths: dict[str, Any] = contract()["paths"]
    if spec_path not in paths:
        raise KeyError(f"the contract has no path {spec_path!r}")
    operations: dict[str, Any] = paths[spec_path]
    if method.lower() not in operations:
        raise KeyError(f"the contract has no {method.upper()} {spec_path}")
    operation: dict[str, Any] = operations[method.lower()]
    return operation


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    """The schema declared for one response (None when it declares no body).

    `path` is the contract's path template (`/partner/accounts/{encoded_account_id}/plan`), with
    or without the `/v3` base path. Raises `KeyError` when the contract does not list `status`.
    """
    responses: dict[str, Any] = _operation(path, method)["responses"]
    declared = responses.get(str(status))
    if declared is None:
        raise KeyError(f"{method.upper()} {path} does not declare a {status} response")
    schema: dict[str, Any] | None = declared.get("schema")
    return schema


def validate_response(path: str, method: str, status: int, body: object) -> None:
    """Check that `status` is declared for the operation and `body` matches its schema."""
    schema = response_schema(path, method, status)
    if schema is None:
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/") and len(schema) == 1:
        _validator(ref).validate(body)
        return
    spec = contract()
    jsonschema.Draft4Validator(
        {**schema, "definitions": spec["definitions"]},
        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER,
    ).validate(body)
