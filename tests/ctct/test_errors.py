"""CTCT's error bodies parse in every shape, and each status maps to the error a caller handles."""

from __future__ import annotations

import json

import pytest

from app.ctct.errors import (
    CtctAuthError,
    CtctConflict,
    CtctError,
    CtctNotFound,
    CtctNotOurs,
    CtctRateLimited,
    CtctServerError,
    CtctUnavailable,
    CtctValidationError,
    ErrorDetail,
    error_from_response,
    parse_error_body,
)


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_an_array_of_errors_parses_every_entry() -> None:
    body = _body(
        [
            {"error_key": "partner.account.validation", "error_message": "login_name: too short"},
            {"error_key": "partner.account.validation", "error_message": "contact_email: invalid"},
        ]
    )

    assert parse_error_body(body) == (
        ErrorDetail("partner.account.validation", "login_name: too short"),
        ErrorDetail("partner.account.validation", "contact_email: invalid"),
    )


def test_a_single_error_object_parses_like_an_array_of_one() -> None:
    body = _body({"error_key": "throttled", "error_message": "Too Many Requests"})

    assert parse_error_body(body) == (ErrorDetail("throttled", "Too Many Requests"),)


def test_an_oauth_error_from_the_token_endpoint_parses() -> None:
    assert parse_error_body(_body({"error": "invalid_client"})) == (
        ErrorDetail("invalid_client", "invalid_client"),
    )


def test_a_non_json_body_becomes_a_truncated_message() -> None:
    details = parse_error_body(b"<html>Bad Gateway " + b"x" * 1000 + b"</html>")

    assert len(details) == 1
    assert details[0].error_key is None
    assert details[0].error_message.startswith("<html>Bad Gateway")
    assert len(details[0].error_message) <= 300


def test_an_empty_body_parses_to_no_details() -> None:
    assert parse_error_body(b"") == ()


@pytest.mark.parametrize(
    ("status", "body", "account_id", "expected"),
    [
        (400, [{"error_key": "v", "error_message": "bad"}], None, CtctValidationError),
        (
            400,
            [{"error_key": "partner.account.not_managed", "error_message": "x"}],
            "a0abc",
            CtctNotOurs,
        ),
        (
            400,
            [{"error_key": "x", "error_message": "Client belongs to a different partner"}],
            "a0abc",
            CtctNotOurs,
        ),
        (401, {"error_key": "unauthorized", "error_message": "Unauthorized"}, None, CtctAuthError),
        (403, {"error_key": "forbidden", "error_message": "no"}, None, CtctAuthError),
        (404, [{"error_key": "nf", "error_message": "gone"}], "a0abc", CtctNotFound),
        (409, [{"error_key": "c", "error_message": "taken"}], None, CtctConflict),
        (429, {"error_key": "throttled", "error_message": "Too Many"}, None, CtctRateLimited),
        (500, [{"error_key": "server.error", "error_message": "boom"}], None, CtctServerError),
        (
            503,
            [{"error_key": "u", "error_message": "Dependencies unavailable"}],
            None,
            CtctUnavailable,
        ),
        (415, [{"error_key": "m", "error_message": "media"}], None, CtctServerError),
    ],
)
def test_each_status_maps_to_its_error(
    status: int, body: object, account_id: str | None, expected: type[CtctError]
) -> None:
    error = error_from_response(status, _body(body), operation="op", encoded_account_id=account_id)

    assert type(error) is expected
    assert error.status == status
    assert error.operation == "op"


def test_not_ours_is_only_recognised_on_account_scoped_calls() -> None:
    body = _body([{"error_key": "partner.account.not_managed", "error_message": "x"}])

    error = error_from_response(400, body, operation="create_account")

    assert type(error) is CtctValidationError


def test_429_kinds_decide_whether_a_retry_can_help() -> None:
    throttled = error_from_response(
        429, _body({"error_key": "throttled", "error_message": "Too Many Requests"}), operation="x"
    )
    quota = error_from_response(
        429,
        _body({"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}),
        operation="x",
    )

    assert isinstance(throttled, CtctRateLimited)
    assert isinstance(quota, CtctRateLimited)
    assert (throttled.kind, throttled.should_retry) == ("throttled", True)
    assert (quota.kind, quota.should_retry) == ("quota_exceeded", False)


def test_should_retry_is_explicit_per_class() -> None:
    def error(status: int) -> CtctError:
        return error_from_response(status, b"", operation="x")

    assert error(503).should_retry
    assert error(500).should_retry
    assert error(502).should_retry
    assert not error(400).should_retry
    assert not error(401).should_retry
    assert not error(404).should_retry
    assert not error(409).should_retry
    assert not error(415).should_retry


def test_validation_errors_keep_every_message_for_the_caller() -> None:
    body = _body(
        [
            {"error_key": "k", "error_message": "login_name: too short"},
            {"error_key": "k", "error_message": "password: too weak"},
        ]
    )

    error = error_from_response(400, body, operation="create_account")

    assert [e.error_message for e in error.errors] == [
        "login_name: too short",
        "password: too weak",
    ]
    assert error.error_key == "k"
    assert "create_account" in str(error)
