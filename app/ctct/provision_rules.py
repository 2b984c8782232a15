"""CTCT's rules for the create-account body (`Provision`), defined once.

The sandbox answers with these rules and our own `POST /v1/accounts` checks them before storing
anything, so both reject exactly the same bodies. Sources: the contract's `Provision` definition
and NOTES §2.1. Where CTCT is ambiguous (NOTES §7 Q6) the decision is commented at the rule.

`validate_provision` reports every problem at once; a password never appears in a message.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import pycountry
from email_validator import EmailNotValidError, validate_email

from app.errors import FieldError

STRING_FIELDS = (
    "contact_email",
    "contact_phone",
    "country_code",
    "organization_name",
    "organization_phone",
    "state_code",
    "time_zone_id",
    "website",
    "login_name",
    "password",
    "first_name",
    "last_name",
    "partner_account_id",
    "billing_locale",
    "external_id",
    "external_provider",
)
BOOLEAN_FIELDS = ("managed_site_owner", "enable_single_billing", "gdpr_opt_out")
PROVISION_FIELDS = frozenset(STRING_FIELDS + BOOLEAN_FIELDS)
REQUIRED_FIELDS = ("contact_email", "country_code", "login_name", "state_code")

# CTCT only says it rejects "easily guessed or compromised" passwords; this short list stands in
# for its industry database: the most common 8+ character passwords of public breach top lists.
GUESSABLE_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "87654321",
        "11111111",
        "00000000",
        "qwertyuiop",
        "qwerty123",
        "1q2w3e4r",
        "1qaz2wsx",
        "abcd1234",
        "iloveyou",
        "sunshine",
        "football",
        "baseball",
        "welcome1",
        "letmein1",
        "trustno1",
        "princess",
        "superman",
        "whatever",
        "changeme",
    }
)
BILLING_LOCALES = ("en_US", "en_GB")
STATE_COUNTRIES = ("US", "CA")

LOGIN_NAME_PATTERN = r"[A-Za-z0-9\-_@.+]+"
_LOGIN_NAME = re.compile(LOGIN_NAME_PATTERN)
_HOST = re.compile(r"[A-Za-z0-9\-.\[\]:]+")

# (minimum, maximum) characters; also the bounds the typed body documents (`provision_body`).
LENGTHS: Mapping[str, tuple[int, int | None]] = {
    "contact_email": (0, 80),
    "contact_phone": (5, 25),
    "country_code": (2, 3),
    "organization_name": (1, 50),
    "organization_phone": (5, 25),
    # Not in the contract: subdivision codes are 2-3 characters and elsewhere it is blank.
    "state_code": (0, 3),
    # Not in the contract: the longest IANA zone name is 32 characters.
    "time_zone_id": (0, 64),
    # Not in the contract: browsers and CDNs rarely take URLs beyond 2 KB.
    "website": (0, 2048),
    "login_name": (6, 50),
    "password": (8, 80),
    "first_name": (2, 80),
    "last_name": (2, 80),
    "partner_account_id": (0, 80),
    "external_id": (0, 255),
    "external_provider": (0, 80),
}


def validate_provision(body: object) -> list[FieldError]:
    """Every way `body` breaks CTCT's create-account rules; empty when CTCT would accept it."""
    if not isinstance(body, dict):
        return [FieldError("body", "must be a JSON object")]
    errors: list[FieldError] = []
    # A JSON null is taken as "not sent": CTCT's Java stack maps null and absent alike. So a
    # null required field is refused, and a null optional one is never sent on.
    fields = {key: value for key, value in body.items() if value is not None}
    for name in REQUIRED_FIELDS:
        if name not in fields:
            errors.append(FieldError(name, "must not be null" if name in body else "is required"))
    for name, value in fields.items():
        if name not in PROVISION_FIELDS:
            errors.append(FieldError(str(name), "is not a field of CTCT's create body"))
        elif name in BOOLEAN_FIELDS:
            if not isinstance(value, bool):
                errors.append(FieldError(name, "must be a boolean"))
        elif not isinstance(value, str):
            errors.append(FieldError(name, "must be a string"))
        else:
            errors.extend(FieldError(name, message) for message in _string_problems(name, value))
    errors.extend(_cross_field_problems(fields))
    return _in_field_order(errors)


def _string_problems(name: str, value: str) -> list[str]:
    bounds = LENGTHS.get(name)
    if bounds is not None:
        problem = _length_problem(value, *bounds)
        if problem is not None:
            return [problem]
    check = _CHECKS.get(name)
    return check(value) if check is not None else []


def _length_problem(value: str, minimum: int, maximum: int | None) -> str | None:
    if maximum is not None and len(value) > maximum:
        if minimum > 0:
            return f"must be between {minimum} and {maximum} characters"
        return f"must be at most {maximum} characters"
    if len(value) < minimum:
        if maximum is None:
            return f"must be at least {minimum} characters"
        return f"must be between {minimum} and {maximum} characters"
    return None


def _email_problems(value: str) -> list[str]:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return ["is not a valid email address"]
    return []


def _country_problems(value: str) -> list[str]:
    return [] if country_alpha_2(value) else ["is not an ISO 3166-1 alpha-2 or alpha-3 code"]


def _login_name_problems(value: str) -> list[str]:
    if _LOGIN_NAME.fullmatch(value):
        return []
    return ["may contain only letters, digits and - _ @ . +"]


def _website_problems(value: str) -> list[str]:
    message = "must be a valid URL starting with http:// or https://"
    if any(char.isspace() for char in value):
        return [message]
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return [message]
    if parts.scheme.lower() not in ("http", "https") or not value.lower().startswith(
        parts.scheme.lower() + "://"
    ):
        return [message]
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        return [message]
    return []


def _password_problems(value: str) -> list[str]:
    if value.lower() in GUESSABLE_PASSWORDS:
        return ["is too easy to guess"]
    return []


def _billing_locale_problems(value: str) -> list[str]:
    # Case-insensitive: CTCT's own create example sends "en_us" (NOTES §7 Q6).
    if value.lower() in (locale.lower() for locale in BILLING_LOCALES):
        return []
    return ["must be en_US or en_GB"]


def _time_zone_problems(value: str) -> list[str]:
    known = _time_zones()
    if not known or value in known:
        return []
    return ["is not a known time zone (IANA name such as US/Eastern)"]


_CHECKS: Mapping[str, Callable[[str], list[str]]] = {
    "contact_email": _email_problems,
    "country_code": _country_problems,
    "login_name": _login_name_problems,
    "website": _website_problems,
    "password": _password_problems,
    "billing_locale": _billing_locale_problems,
    "time_zone_id": _time_zone_problems,
}


def _cross_field_problems(fields: Mapping[str, object]) -> list[FieldError]:
    errors: list[FieldError] = []
    external_id = fields.get("external_id")
    password = fields.get("password")
    # An empty external_id names no external authenticator, so it does not replace a password.
    has_external_id = isinstance(external_id, str) and external_id != ""
    if password is None and not has_external_id:
        errors.append(FieldError("password", "is required unless external_id is given"))
    if password is not None and has_external_id:
        errors.append(FieldError("password", "must not be sent together with external_id"))
    login_name = fields.get("login_name")
    if (
        isinstance(password, str)
        and isinstance(login_name, str)
        and len(login_name) >= LENGTHS["login_name"][0]
        and login_name.lower() in password.lower()
    ):
        errors.append(FieldError("password", "must not contain the login name"))
    errors.extend(_state_problems(fields.get("country_code"), fields.get("state_code")))
    if fields.get("enable_single_billing") is True and fields.get("managed_site_owner") is not True:
        errors.append(
            FieldError("enable_single_billing", "may be true only when managed_site_owner is true")
        )
    return errors


def _state_problems(country_code: object, state_code: object) -> list[FieldError]:
    if not isinstance(country_code, str) or not isinstance(state_code, str):
        return []
    country = country_alpha_2(country_code)
    if country is None:
        return []
    if country in STATE_COUNTRIES:
        if not state_code.strip():
            return [FieldError("state_code", f"is required when country_code is {country}")]
        if state_code.upper() not in _subdivisions(country):
            return [FieldError("state_code", f"is not a state or province code of {country}")]
        return []
    # "Leave blank" outside US/CA: an empty (or all-blank) string is accepted (NOTES §7 Q6).
    if state_code.strip():
        return [FieldError("state_code", "must be blank when country_code is not US or CA")]
    return []


def country_alpha_2(code: str) -> str | None:
    """The ISO 3166-1 alpha-2 code for an alpha-2 or alpha-3 code (any case), else None."""
    # Case-insensitive: ISO codes are upper case, but nothing says CTCT rejects "us".
    if len(code) == 2:
        country = pycountry.countries.get(alpha_2=code)
    elif len(code) == 3:
        country = pycountry.countries.get(alpha_3=code)
    else:
        return None
    return None if country is None else str(country.alpha_2)


@functools.cache
def _subdivisions(country: str) -> frozenset[str]:
    prefix = f"{country}-"
    codes = (str(sub.code) for sub in pycountry.subdivisions)
    return frozenset(code.removeprefix(prefix) for code in codes if code.startswith(prefix))


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_FIELD_ORDER = {name: index for index, name in enumerate(("body", *STRING_FIELDS, *BOOLEAN_FIELDS))}


def _in_field_order(errors: list[FieldError]) -> list[FieldError]:
    return sorted(errors, key=lambda error: _FIELD_ORDER.get(error["field"], len(_FIELD_ORDER)))
