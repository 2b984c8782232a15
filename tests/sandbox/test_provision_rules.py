"""CTCT's create-body rules: each rule rejects what it should and accepts what it should."""

from __future__ import annotations

from typing import Any

import pytest

from app.ctct.provision_rules import GUESSABLE_PASSWORDS, validate_provision
from tests.contract import validate_definition

DROP = object()

MINIMAL: dict[str, Any] = {
    "contact_email": "hank.smith@example.com",
    "country_code": "US",
    "state_code": "MA",
    "login_name": "hank_smith",
    "password": "Fresh fruit 4 all",
}

FULL: dict[str, Any] = {
    "contact_email": "hank.smith@example.com",
    "contact_phone": "111-333-5656",
    "country_code": "US",
    "organization_name": "Hanks Fresh Fruit",
    "organization_phone": "401-333-1000",
    "state_code": "MA",
    "time_zone_id": "US/Eastern",
    "website": "http://www.example.com",
    "login_name": "partner_child_32",
    "password": "Fresh fruit 4 all",
    "first_name": "Hank",
    "last_name": "Smith",
    "partner_account_id": "partner1234",
    "billing_locale": "en_US",
    "managed_site_owner": True,
    "enable_single_billing": True,
    "gdpr_opt_out": True,
}


def _body(changes: dict[str, Any]) -> dict[str, Any]:
    body = {**MINIMAL, **changes}
    return {key: value for key, value in body.items() if value is not DROP}


def _fields(body: object) -> list[str]:
    return [error["field"] for error in validate_provision(body)]


REJECTED = [
    # contact_email
    pytest.param({"contact_email": DROP}, "contact_email", id="email-missing"),
    pytest.param({"contact_email": None}, "contact_email", id="email-null"),
    pytest.param({"contact_email": "a" * 69 + "@example.com"}, "contact_email", id="email-81"),
    pytest.param({"contact_email": "not-an-email"}, "contact_email", id="email-syntax"),
    pytest.param({"contact_email": "two@@example.com"}, "contact_email", id="email-double-at"),
    pytest.param({"contact_email": ""}, "contact_email", id="email-empty"),
    pytest.param({"contact_email": 42}, "contact_email", id="email-not-string"),
    # country_code
    pytest.param({"country_code": DROP}, "country_code", id="country-missing"),
    pytest.param({"country_code": "U"}, "country_code", id="country-1-char"),
    pytest.param({"country_code": "USAA"}, "country_code", id="country-4-chars"),
    pytest.param({"country_code": "XX"}, "country_code", id="country-unknown-alpha2"),
    pytest.param({"country_code": "ZZZ"}, "country_code", id="country-unknown-alpha3"),
    pytest.param({"country_code": 840}, "country_code", id="country-not-string"),
    # login_name
    pytest.param({"login_name": DROP}, "login_name", id="login-missing"),
    pytest.param({"login_name": "hank5"}, "login_name", id="login-5-chars"),
    pytest.param({"login_name": "h" * 51}, "login_name", id="login-51-chars"),
    pytest.param({"login_name": "hank smith"}, "login_name", id="login-space"),
    pytest.param({"login_name": "hank#smith"}, "login_name", id="login-hash"),
    pytest.param({"login_name": "hänk_smith"}, "login_name", id="login-non-ascii"),
    pytest.param({"login_name": ["hank_smith"]}, "login_name", id="login-not-string"),
    # state_code
    pytest.param({"state_code": DROP}, "state_code", id="state-missing"),
    pytest.param({"state_code": ""}, "state_code", id="state-blank-for-us"),
    pytest.param({"state_code": "ZZ"}, "state_code", id="state-unknown-us"),
    pytest.param(
        {"country_code": "USA", "state_code": "Massachusetts"}, "state_code", id="state-name"
    ),
    pytest.param({"country_code": "CA", "state_code": "MA"}, "state_code", id="state-us-for-ca"),
    pytest.param({"country_code": "CA", "state_code": ""}, "state_code", id="state-blank-for-ca"),
    pytest.param(
        {"country_code": "GB", "state_code": "LND"}, "state_code", id="state-outside-us-ca"
    ),
    pytest.param({"state_code": 1}, "state_code", id="state-not-string"),
    # phones
    pytest.param({"contact_phone": "1234"}, "contact_phone", id="contact-phone-4"),
    pytest.param({"contact_phone": "1" * 26}, "contact_phone", id="contact-phone-26"),
    pytest.param({"contact_phone": 5551234}, "contact_phone", id="contact-phone-number"),
    pytest.param({"organization_phone": "1234"}, "organization_phone", id="org-phone-4"),
    pytest.param({"organization_phone": "1" * 26}, "organization_phone", id="org-phone-26"),
    # organization_name
    pytest.param({"organization_name": ""}, "organization_name", id="org-name-empty"),
    pytest.param({"organization_name": "o" * 51}, "organization_name", id="org-name-51"),
    # website
    pytest.param({"website": "ftp://example.com"}, "website", id="website-ftp"),
    pytest.param({"website": "www.example.com"}, "website", id="website-no-scheme"),
    pytest.param({"website": "http://"}, "website", id="website-no-host"),
    pytest.param({"website": "http:/example.com"}, "website", id="website-one-slash"),
    pytest.param({"website": "http://exa mple.com"}, "website", id="website-space"),
    pytest.param({"website": "http://example.com:99999"}, "website", id="website-bad-port"),
    # password
    pytest.param({"password": DROP}, "password", id="password-missing"),
    pytest.param({"password": "Sh0rt!x"}, "password", id="password-7"),
    pytest.param({"password": "p" * 81}, "password", id="password-81"),
    pytest.param({"password": "my HANK_SMITH pw"}, "password", id="password-contains-login"),
    pytest.param({"password": "password"}, "password", id="password-guessable"),
    pytest.param({"password": "PassWord"}, "password", id="password-guessable-any-case"),
    pytest.param({"password": "12345678"}, "password", id="password-digits"),
    pytest.param({"password": "qwertyuiop"}, "password", id="password-keyboard"),
    pytest.param({"external_id": "ext-1"}, "password", id="password-with-external-id"),
    pytest.param({"password": 12345678}, "password", id="password-not-string"),
    # names
    pytest.param({"first_name": "H"}, "first_name", id="first-name-1"),
    pytest.param({"first_name": "H" * 81}, "first_name", id="first-name-81"),
    pytest.param({"last_name": "S"}, "last_name", id="last-name-1"),
    pytest.param({"last_name": "S" * 81}, "last_name", id="last-name-81"),
    pytest.param({"partner_account_id": "p" * 81}, "partner_account_id", id="partner-id-81"),
    # billing_locale
    pytest.param({"billing_locale": "en_CA"}, "billing_locale", id="locale-en-ca"),
    pytest.param({"billing_locale": "fr_FR"}, "billing_locale", id="locale-fr"),
    pytest.param({"billing_locale": "en-US"}, "billing_locale", id="locale-hyphen"),
    # booleans
    pytest.param({"managed_site_owner": "true"}, "managed_site_owner", id="managed-string"),
    pytest.param({"gdpr_opt_out": 1}, "gdpr_opt_out", id="gdpr-int"),
    pytest.param({"enable_single_billing": "yes"}, "enable_single_billing", id="single-string"),
    pytest.param(
        {"enable_single_billing": True}, "enable_single_billing", id="single-without-managed"
    ),
    pytest.param(
        {"enable_single_billing": True, "managed_site_owner": False},
        "enable_single_billing",
        id="single-with-unmanaged",
    ),
    # external authenticator
    pytest.param({"password": DROP, "external_id": "e" * 256}, "external_id", id="external-id-256"),
    pytest.param({"external_provider": "p" * 81}, "external_provider", id="provider-81"),
    # time_zone_id
    pytest.param({"time_zone_id": "Mars/Olympus_Mons"}, "time_zone_id", id="tz-unknown"),
    pytest.param({"time_zone_id": -5}, "time_zone_id", id="tz-not-string"),
    # unknown fields
    pytest.param({"idp_provider": "okta"}, "idp_provider", id="unknown-v2-field"),
    pytest.param({"loginName": "hank_smith"}, "loginName", id="unknown-camel-case"),
]


@pytest.mark.parametrize(("changes", "field"), REJECTED)
def test_rule_rejects(changes: dict[str, Any], field: str) -> None:
    assert field in _fields(_body(changes))


ACCEPTED = [
    pytest.param({}, id="minimal"),
    pytest.param({"contact_email": "a" * 68 + "@example.com"}, id="email-80"),
    pytest.param({"contact_email": "first.last+tag@sub.example.co.uk"}, id="email-plus-tag"),
    pytest.param({"country_code": "USA"}, id="country-alpha3"),
    pytest.param({"country_code": "us", "state_code": "ma"}, id="country-state-lower-case"),
    pytest.param({"country_code": "CA", "state_code": "ON"}, id="canada-province"),
    pytest.param({"country_code": "US", "state_code": "DC"}, id="us-district"),
    pytest.param({"country_code": "US", "state_code": "PR"}, id="us-territory"),
    pytest.param({"country_code": "GB", "state_code": ""}, id="outside-us-ca-empty-state"),
    pytest.param({"country_code": "DEU", "state_code": ""}, id="outside-us-ca-alpha3"),
    pytest.param({"login_name": "h" * 6}, id="login-6"),
    pytest.param({"login_name": "h" * 50}, id="login-50"),
    pytest.param({"login_name": "a-b_c@d.e+f"}, id="login-all-symbols"),
    pytest.param({"contact_phone": "12345", "organization_phone": "1" * 25}, id="phones-5-25"),
    pytest.param({"organization_name": "O"}, id="org-name-1"),
    pytest.param({"organization_name": "O" * 50}, id="org-name-50"),
    pytest.param({"website": "http://example.com"}, id="website-http"),
    pytest.param({"website": "https://example.com:8443/a/b?q=1#top"}, id="website-https-full"),
    pytest.param({"password": "Abcdefg1"}, id="password-8"),
    pytest.param({"password": "p" * 79 + "!"}, id="password-80"),
    pytest.param({"password": "with spaces & symbols!"}, id="password-spaces"),
    pytest.param({"password": DROP, "external_id": "ext-1"}, id="external-id-instead"),
    pytest.param(
        {"password": DROP, "external_id": "e" * 255, "external_provider": "p" * 80},
        id="external-255-provider-80",
    ),
    pytest.param({"first_name": "Al", "last_name": "L" * 80}, id="names-2-80"),
    pytest.param({"partner_account_id": "p" * 80}, id="partner-id-80"),
    pytest.param({"partner_account_id": ""}, id="partner-id-empty"),
    pytest.param({"billing_locale": "en_US"}, id="locale-us"),
    pytest.param({"billing_locale": "en_GB"}, id="locale-gb"),
    pytest.param({"billing_locale": "en_us"}, id="locale-lower-case-as-in-ctct-example"),
    pytest.param({"managed_site_owner": False, "gdpr_opt_out": False}, id="booleans-false"),
    pytest.param(
        {"managed_site_owner": True, "enable_single_billing": True}, id="single-with-managed"
    ),
    pytest.param({"enable_single_billing": False}, id="single-false-unmanaged"),
    pytest.param({"time_zone_id": "Europe/London"}, id="tz-iana"),
    pytest.param({"website": None, "first_name": None}, id="null-optional-is-absent"),
]


@pytest.mark.parametrize("changes", ACCEPTED)
def test_rule_accepts(changes: dict[str, Any]) -> None:
    assert validate_provision(_body(changes)) == []


def test_the_full_documented_body_is_valid_and_conforms_to_the_contract() -> None:
    assert validate_provision(FULL) == []
    validate_definition("Provision", FULL)


@pytest.mark.parametrize("body", [[], "body", 1, None, True], ids=repr)
def test_a_body_that_is_not_an_object_is_one_error(body: object) -> None:
    assert _fields(body) == ["body"]


def test_every_error_is_reported_at_once() -> None:
    body = {
        "contact_email": "nope",
        "country_code": "US",
        "state_code": "",
        "login_name": "bad name",
        "password": "short",
        "website": "example.com",
        "billing_locale": "de_DE",
        "gdpr_opt_out": "no",
        "colour": "blue",
    }

    fields = _fields(body)

    assert set(fields) == {
        "contact_email",
        "state_code",
        "login_name",
        "password",
        "website",
        "billing_locale",
        "gdpr_opt_out",
        "colour",
    }


def test_errors_use_json_field_names_and_messages() -> None:
    errors = validate_provision(_body({"contact_email": DROP}))

    assert errors == [{"field": "contact_email", "message": "is required"}]


SECRET = "Hunter2-hank_smith-secret"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"password": SECRET}, id="contains-login"),
        pytest.param({"password": SECRET * 4}, id="too-long"),
        pytest.param({"password": SECRET, "external_id": "ext"}, id="with-external-id"),
        pytest.param({"password": SECRET[:7]}, id="too-short"),
        pytest.param({"password": sorted(GUESSABLE_PASSWORDS)[0]}, id="guessable"),
    ],
)
def test_the_password_never_appears_in_a_message(changes: dict[str, Any]) -> None:
    errors = validate_provision(_body(changes))

    assert errors
    password = changes["password"]
    for error in errors:
        assert password not in error["message"]
        assert password.lower() not in error["message"].lower()
