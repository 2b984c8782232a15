"""The OpenAPI document is precise: valid OpenAPI 3.1, every request and answer typed, problems
with their `errors` extension, the statuses each operation really returns, security per
operation, the outgoing webhooks; and a client generated from it type-checks (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from app.ctct.provision_rules import LENGTHS, PROVISION_FIELDS, REQUIRED_FIELDS
from app.errors import PROBLEM_CONTENT_TYPE
from app.main import create_app
from app.settings import Settings
from app.webhooks.models import EventType

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/ctct/webhooks"),
}
METHODS = ("get", "put", "post", "delete", "patch")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    application: FastAPI = create_app(Settings(_env_file=None))
    return application.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def _schema(document: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_create_body_is_ctcts_provision_with_its_rules(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/accounts"]["post"]
    body = operation["requestBody"]
    schema = _schema(document, body["content"]["application/json"]["schema"]["$ref"])

    assert body["required"] is True
    assert set(schema["properties"]) == PROVISION_FIELDS
    assert set(schema["required"]) == set(REQUIRED_FIELDS)
    assert schema["additionalProperties"] is False
    assert schema["examples"]
    for name, (minimum, maximum) in LENGTHS.items():
        prop = schema["properties"][name]
        string = next((s for s in prop.get("anyOf", [prop]) if s.get("type") == "string"), prop)
        assert string.get("maxLength") == maximum, name
        assert string.get("minLength", 0) == minimum, name
    idempotency = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert idempotency["required"] is True


def test_plan_and_cancel_answers_are_typed(document: dict[str, Any]) -> None:
    plan = document["paths"]["/v1/accounts/{account_id}/plan"]
    cancel = document["paths"]["/v1/accounts/{account_id}/cancel"]["post"]

    for operation in (plan["get"], plan["put"], cancel):
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, operation["operationId"]
    assert set(_schema(document, "PlanOut")["properties"]) >= {
        "plan_type",
        "billing_status",
        "billing_day_of_month",
        "current_tiers",
    }
    assert "effective_date" in _schema(document, "CancellationOut")["properties"]


def test_every_error_is_a_problem_with_its_errors_extension(document: dict[str, Any]) -> None:
    problem = _schema(document, "Problem")
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)


def test_validation_errors_are_documented_as_the_400s_they_are(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in _operations(document):
        reads_input = operation.get("parameters") or "requestBody" in operation
        assert ("400" in operation["responses"]) == bool(reads_input), (method, path)
        assert "422" not in operation["responses"] or path == "/v1/accounts", (method, path)
        if "requestBody" in operation:
            assert "413" in operation["responses"], (method, path)


def test_every_operation_states_its_security_and_scope(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    for method, path, operation in _operations(document):
        if (method, path) in PUBLIC:
            assert not operation.get("security"), (method, path)
            continue
        [requirement] = operation["security"]
        [(scheme, scopes)] = requirement.items()
        assert schemes[scheme]["scheme"] == "bearer"
        assert len(scopes) == 1, (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_the_outgoing_webhooks_are_documented(document: dict[str, Any]) -> None:
    webhooks = document["webhooks"]

    assert set(webhooks) == {event.value for event in EventType}
    for name, item in webhooks.items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        event = _schema(document, body["$ref"])
        assert event["properties"]["type"]["const"] == name
        assert {"type", "timestamp", "data"} <= set(event["required"])
        headers = {p["name"] for p in item["post"]["parameters"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_a_client_generated_from_the_document_type_checks(
    document: dict[str, Any], tmp_path: Path
) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "config.yml"
    # No formatter runs (offline and tool-independent); a CSV upload is sent as raw bytes, the
    # generator's own way for a media type it does not model.
    config.write_text(
        "post_hooks: []\ncontent_type_overrides:\n  text/csv: application/octet-stream\n"
    )
    generated = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            f"--path={spec}",
            f"--config={config}",
            f"--output-path={tmp_path / 'partnergate_client'}",
            "--meta=none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    (tmp_path / "use_client.py").write_text(USAGE)

    checked = subprocess.run(
        [
            str(BIN / "mypy"),
            "--strict",
            "--no-incremental",
            f"--cache-dir={tmp_path / '.mypy_cache'}",
            "partnergate_client",
            "use_client.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# Typed calls into the generated client: mypy fails if a body or an answer is untyped (`Any`
# would make `Provision`, `PlanOut` or `Problem` missing, or their fields unknown).
USAGE = textwrap.dedent(
    """
    from partnergate_client import AuthenticatedClient
    from partnergate_client.api.provisioning import (
        cancel_v1_accounts_account_id_cancel_post as cancel,
        create_account_v1_accounts_post as create,
        get_plan_v1_accounts_account_id_plan_get as get_plan,
    )
    from partnergate_client.models import (
        Cancellation,
        CancellationOut,
        PlanOut,
        Problem,
        Provision,
        ProvisionedClient,
        ProvisioningRequestOut,
    )


    def provision(client: AuthenticatedClient) -> str:
        body = Provision(
            contact_email="hank@example.com",
            country_code="US",
            state_code="MA",
            login_name="hank_smith",
            password="Fresh fruit 4 all",
        )
        answer = create.sync(client=client, body=body, idempotency_key="k-1")
        if isinstance(answer, ProvisionedClient):
            return answer.encoded_account_id
        if isinstance(answer, ProvisioningRequestOut):
            return str(answer.id)
        if isinstance(answer, Problem):
            return "; ".join(f"{e.field}: {e.message}" for e in answer.errors or [])
        return ""


    def plan(client: AuthenticatedClient) -> str | None:
        answer = get_plan.sync("a07e1lxqqqo0", client=client)
        if isinstance(answer, PlanOut) and isinstance(answer.plan_type, str):
            return answer.plan_type
        return None


    def cancel_now(client: AuthenticatedClient) -> bool:
        answer = cancel.sync("a07e1lxqqqo0", client=client, body=Cancellation(reason_id=14))
        return isinstance(answer, CancellationOut)
    """
)
