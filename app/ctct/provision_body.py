"""CTCT's create-account body (`Provision`) as a typed model, checked by the one rule table.

`ProvisionBody` has CTCT's field names, and its JSON schema (what our OpenAPI document shows)
takes its lengths and patterns from `provision_rules`. Validation runs the rule table itself on
the raw body first, so every field error is reported at once with CTCT's wording, exactly as the
sandbox reports it; only a body the table accepts is read into the model. A JSON `null` is
refused for a required field; for an optional one it means "not sent", and `to_ctct()` leaves
it out, so a null never reaches CTCT.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from app.ctct.provision_rules import (
    BILLING_LOCALES,
    LENGTHS,
    LOGIN_NAME_PATTERN,
    REQUIRED_FIELDS,
    validate_provision,
)
from app.kit.inputs import InputModel, Loc

CTCT_RULE_ERROR = "ctct_rule"

EXAMPLE: dict[str, Any] = {
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

# Patterns the rule table enforces (in its own words); case-insensitive where it is.
_PATTERNS = {
    "login_name": f"^{LOGIN_NAME_PATTERN}$",
    "country_code": "^[A-Za-z]{2,3}$",
    "website": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$",
    "billing_locale": "^(?:"
    + "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in locale)
        for locale in BILLING_LOCALES
    )
    + ")$",
}
_FORMATS = {"contact_email": "email"}
# Bounded by the pattern already; said for clients that read only lengths.
_DOCUMENTED_MAX = {"billing_locale": max(len(locale) for locale in BILLING_LOCALES)}


def _rule(name: str, description: str) -> Any:
    minimum, maximum = LENGTHS.get(name, (0, None))
    extra: dict[str, Any] = {}
    if name in _FORMATS:
        extra["format"] = _FORMATS[name]
    return Field(
        ... if name in REQUIRED_FIELDS else None,
        description=description,
        min_length=minimum or None,
        max_length=maximum or _DOCUMENTED_MAX.get(name),
        pattern=_PATTERNS.get(name),
        json_schema_extra=extra or None,
        examples=[EXAMPLE[name]] if name in EXAMPLE else None,
    )


class ProvisionBody(InputModel):
    """CTCT's `Provision`: the body of `POST /v1/accounts`, sent on to CTCT as it is."""

    model_config = ConfigDict(
        extra="forbid", title="Provision", json_schema_extra={"examples": [EXAMPLE]}
    )

    input_title: ClassVar[str] = "Provision"

    contact_email: str = _rule("contact_email", "a valid email address")
    contact_phone: str | None = _rule("contact_phone", "")
    country_code: str = _rule("country_code", "ISO 3166-1 alpha-2 or alpha-3, any case")
    organization_name: str | None = _rule("organization_name", "")
    organization_phone: str | None = _rule("organization_phone", "")
    state_code: str = _rule(
        "state_code", 'a state or province code for US and CA; blank ("") elsewhere'
    )
    time_zone_id: str | None = _rule("time_zone_id", "an IANA time zone name, e.g. US/Eastern")
    website: str | None = _rule("website", "a URL starting http:// or https://")
    login_name: str = _rule(
        "login_name", "unique; letters, digits and - _ @ . +; the password must not contain it"
    )
    password: str | None = _rule(
        "password",
        "required unless external_id is given, and never with it; not easily guessed; "
        "never stored in clear or returned",
    )
    first_name: str | None = _rule("first_name", "")
    last_name: str | None = _rule("last_name", "")
    partner_account_id: str | None = _rule(
        "partner_account_id", "our own id for the account, for billing and reporting"
    )
    billing_locale: str | None = _rule("billing_locale", "en_US (USD) or en_GB (GBP), any case")
    managed_site_owner: bool | None = Field(
        default=None, description="CTCT forces it true for a managed partner", examples=[True]
    )
    enable_single_billing: bool | None = Field(
        default=None, description="true only together with managed_site_owner", examples=[True]
    )
    gdpr_opt_out: bool | None = Field(
        default=None, description="true: CTCT sends no marketing to the account", examples=[True]
    )
    external_id: str | None = _rule("external_id", "the id at an external authenticator")
    external_provider: str | None = _rule(
        "external_provider", "the external authenticator, e.g. Yahoo"
    )

    @classmethod
    def raw_problems(cls, data: object) -> list[tuple[Loc, str, str]]:
        """Storable text first; then every way the body breaks CTCT's rules."""
        problems = super().raw_problems(data)
        if problems:
            return problems
        rule_problems: list[tuple[Loc, str, str]] = []
        for error in validate_provision(data):
            loc: Loc = () if error["field"] == "body" else (error["field"],)
            rule_problems.append((loc, CTCT_RULE_ERROR, error["message"]))
        return rule_problems

    def to_ctct(self) -> dict[str, Any]:
        """The body to send to CTCT: only the fields given, never a null."""
        return self.model_dump(exclude_none=True)
