"""Rules every operation of the API keeps, checked over the app's own OpenAPI document, so that
an operation added later is held to them too: ids outside their column's range name nothing
(404), forged cursors are refused (400 naming `cursor`), and every string a request carries is
bounded."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from tests.conftest import ApiKeyFactory, Headers

BEYOND_BIGINT = 2**63
SAMPLE_ACCOUNT = "a07e1lxqqqo0"
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def everything(api_key: ApiKeyFactory) -> Headers:
    return {"Authorization": f"Bearer {await api_key(*Scope, name='everything')}"}


def operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in app.openapi()["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _path_parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == "path"]


def _fill(path: str, values: dict[str, object]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda match: str(values[match[1]]), path)


async def test_every_id_beyond_its_column_is_a_404_naming_it(
    app: FastAPI, client: httpx.AsyncClient, everything: Headers
) -> None:
    checked = []
    for method, path, operation in operations(app):
        parameters = _path_parameters(operation)
        ids = [p["name"] for p in parameters if p["schema"].get("type") == "integer"]
        if not ids:
            continue
        for too_big in (BEYOND_BIGINT, 0):
            values = {p["name"]: SAMPLE_ACCOUNT for p in parameters} | dict.fromkeys(ids, too_big)
            response = await client.request(method, _fill(path, values), headers=everything)

            assert response.status_code == 404, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert {e["field"] for e in response.json()["errors"]} == set(ids), (method, path)
        assert all(
            p["schema"].get("maximum") == 2**63 - 1 for p in parameters if p["name"] in ids
        ), (method, path)
        checked.append(f"{method} {path}")

    assert len(checked) >= 7, checked


def _forged_cursors() -> list[str]:
    def encode(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    position = json.dumps([BEYOND_BIGINT]).encode()
    return [
        encode(position + b"\x00" * 16),  # the old unkeyed checksum would not help either
        encode(position),
        encode(b"x"),
        "A" * 1024,
        "not-a-cursor",
    ]


async def test_every_listing_refuses_a_forged_cursor_with_a_400_naming_it(
    app: FastAPI, client: httpx.AsyncClient, everything: Headers
) -> None:
    listings = [
        (method, path, operation)
        for method, path, operation in operations(app)
        if any(p["name"] == "cursor" for p in operation.get("parameters", []))
    ]
    for method, path, operation in listings:
        values = {
            p["name"]: 1 if p["schema"].get("type") == "integer" else SAMPLE_ACCOUNT
            for p in _path_parameters(operation)
        }
        for cursor in _forged_cursors():
            response = await client.request(
                method, _fill(path, values), params={"cursor": cursor}, headers=everything
            )
            if response.status_code == 404 and "{" in path:
                continue  # the parent resource does not exist; nothing to page
            assert response.status_code == 400, (path, cursor, response.text)
            assert {e["field"] for e in response.json()["errors"]} == {"cursor"}, path

    assert len(listings) >= 5, listings


def _unbounded_strings(schema: object, where: str, components: dict[str, Any]) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _unbounded_strings(components[name], f"{where}->{name}", components)
        return
    if schema.get("type") == "string" and not (
        {"maxLength", "enum", "const", "format"} & set(schema)
    ):
        yield where
    for key in ("anyOf", "oneOf", "allOf"):
        for index, member in enumerate(schema.get(key, [])):
            yield from _unbounded_strings(member, f"{where}[{index}]", components)
    for name, member in schema.get("properties", {}).items():
        yield from _unbounded_strings(member, f"{where}.{name}", components)
    if "items" in schema:
        yield from _unbounded_strings(schema["items"], f"{where}[]", components)


def test_every_string_a_request_carries_is_bounded(app: FastAPI) -> None:
    components = app.openapi()["components"]["schemas"]
    unbounded = []
    for method, path, operation in operations(app):
        for parameter in operation.get("parameters", []):
            unbounded += _unbounded_strings(
                parameter["schema"], f"{method} {path} {parameter['name']}", components
            )
        for media in operation.get("requestBody", {}).get("content", {}).values():
            unbounded += _unbounded_strings(media["schema"], f"{method} {path} body", components)

    assert unbounded == []
