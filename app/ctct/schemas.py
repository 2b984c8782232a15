"""Typed results of CTCT calls; unknown fields CTCT adds later are ignored."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CtctModel(BaseModel):
    """Tolerant of fields the contract does not (yet) list."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ProvisionResult(CtctModel):
    """201 of `POST /partner/accounts`."""

    encoded_account_id: str
    provision_uuid: str | None = None


class SiteOwner(CtctModel):
    """One `site_owner_list` entry of `GET /partner/accounts`."""

    encoded_account_id: str
    site_owner_name: str | None = None
    organization_name: str | None = None
    billing_status: str | None = None
    subscriber_count: int | None = None
    last_login_date: datetime | None = None

    @field_validator("last_login_date")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A date-time without an offset is read as UTC (the store keeps aware times only).
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AccountPage(CtctModel):
    """One page of our partner list and the path of the next page, if any."""

    accounts: list[SiteOwner]
    next_href: str | None = None


class Tier(CtctModel):
    """One billing tier (`TierObject`)."""

    usage_type: str | None = None
    current_usage: float | None = None
    tier: int | None = None
    tier_min: float | None = None
    tier_max: float | None = None
    price: float | None = None
    currency_code: str | None = None


class Plan(CtctModel):
    """`PlanTiersObject`: the account's plan and billing status."""

    plan_type: str | None = None
    billing_status: str | None = None
    billing_day_of_month: int | None = None
    current_tiers: list[Tier] = Field(default_factory=list)


class Cancellation(CtctModel):
    """`AccountCancellation` as CTCT echoes it."""

    effective_date: datetime | None = None
    reason_id: int | None = None


class AccountSummary(CtctModel):
    """`Customer` from `GET /account/summary` (a user's own account)."""

    encoded_account_id: str
    encoded_partner_id: str | None = None
    organization_name: str | None = None
    contact_email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country_code: str | None = None
    state_code: str | None = None

    @field_validator("encoded_partner_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value


class WebhookSubscription(CtctModel):
    """A partner webhook topic and where CTCT sends its notifications (`hook_uri`)."""

    topic_id: int
    hook_uri: str | None = None
    topic_name: str | None = None
    topic_description: str | None = None
