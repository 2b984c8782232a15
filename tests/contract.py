"""CTCT's published contract (Swagger 2.0) as a test oracle: validate bodies against it, strictly.

The file lives beside the repository at `../shared/upstream/constant-contact-v3-openapi.yml`.
Without it, tests that need it fail in CI and are skipped elsewhere.

The contract is loose: no object forbids unknown fields, few list what is required, and formats
are not checked by default. Bodies are validated against its definitions made strict:

- every object refuses properties it does not declare (`additionalProperties: false`);
- in answers, the fields CTCT's own examples and descriptions show as always present are
  required (`ALWAYS_PRESENT`, each with its source); requests are held only to the contract's
  own `required`, since what a caller may leave out is the contract's to say;
- `date-time`, `int32` and `int64` formats are checked;
- a value the descriptions say may be null (`NULLABLE`) may be null.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from datetime import datetime
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


# Fields of CTCT's answers that its examples and descriptions always show (NOTES section).
ALWAYS_PRESENT: dict[str, tuple[str, ...]] = {
    # §2.1: the 201 example carries both ids.
    "ProvisionResponse": ("encoded_account_id", "provision_uuid"),
    # §2.2: every list example entry has these; `organization_name` is optional at creation and
    # `last_login_date` "does not display" until a first login.
    "PartnerAccount.site_owner_list[]": (
        "encoded_account_id",
        "subscriber_count",
        "site_owner_name",
        "billing_status",
    ),
    # §2.3: the plan example has all four; the day is null during a trial, but present.
    "PlanTiersObject": ("plan_type", "current_tiers", "billing_status", "billing_day_of_month"),
    # §2.3: every tier of the example has every field.
    "TierObject": (
        "usage_type",
        "current_usage",
        "tier",
        "tier_min",
        "tier_max",
        "price",
        "currency_code",
    ),
    # §2.5: "by default, this is the current date and time": always answered.
    "AccountCancellation": ("effective_date",),
    # §4.2: the account's own id, and what `Provision` requires of every account.
    "Customer": ("encoded_account_id", "contact_email", "country_code"),
}
# Values the descriptions say may be null although their type says otherwise.
NULLABLE: dict[str, tuple[str, ...]] = {
    "PlanTiersObject": ("billing_day_of_month",),  # "for trial accounts ... initially null"
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(_date_time)
    for name, (low, high) in _INT_RANGES.items():
        checker.checks(name)(
            lambda value, low=low, high=high: not isinstance(value, int) or low <= value <= high
        )
    return checker


FORMAT_CHECKER = _format_checker()


def _strict(schema: object, where: str, *, answer: bool) -> None:
    """Make `schema` (a definition, or part of one at `where`) strict, in place."""
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        schema.setdefault("additionalProperties", False)
        if answer and where in ALWAYS_PRESENT:
            schema["required"] = sorted({*schema.get("required", []), *ALWAYS_PRESENT[where]})
        for name in NULLABLE.get(where, ()) if answer else ():
            declared = properties[name]
            properties[name] = {"anyOf": [declared, {"type": "null"}]}
        for name, member in properties.items():
            _strict(member, f"{where}.{name}", answer=answer)
    if "items" in schema:
        _strict(schema["items"], f"{where}[]", answer=answer)


@functools.cache
def strict_definitions(*, answer: bool) -> dict[str, Any]:
    """The contract's definitions made strict (see the module docstring)."""
    definitions = copy.deepcopy(contract()["definitions"])
    for name, definition in definitions.items():
        _strict(definition, name, answer=answer)
    return definitions


@functools.cache
def _validator(schema_key: str, *, answer: bool = True) -> jsonschema.Draft4Validator:
    schema: dict[str, Any] = {
        "$ref": schema_key,
        "definitions": strict_definitions(answer=answer),
    }
    return jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER)


def validate_definition(name: str, instance: object, *, answer: bool = True) -> None:
    """Raise `jsonschema.ValidationError` unless `instance` conforms to the strict
    `definitions/<name>` (as an answer CTCT gives, or with `answer=False` a request body)."""
    if name not in contract()["definitions"]:
        raise KeyError(f"the contract has no definition {name!r}")
    _validator(f"#/definitions/{name}", answer=answer).validate(instance)


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
    jsonschema.Draft4Validator(
        {**schema, "definitions": strict_definitions(answer=True)},
        format_checker=FORMAT_CHECKER,
    ).validate(body)
