"""Request and response shapes of the membership routes (registration, probes, CTCT webhooks)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.clients.schemas import AccountId


class RegisterClient(BaseModel):
    """An account the product has seen, and optionally its user's token."""

    model_config = ConfigDict(extra="forbid")

    encoded_account_id: AccountId
    access_token: str | None = Field(
        default=None,
        description="the user's CTCT OAuth access token: used once for /account/summary, "
        "never stored, logged or echoed",
        repr=False,
    )


class CtctWebhookReceipt(BaseModel):
    """What became of one CTCT webhook: applied (200) or accepted and ignored (202)."""

    encoded_account_id: str
    event_type: str
    applied: bool
    reason: str
    status: str | None = None
    billing_status: str | None = None
    plan_type: str | None = None


class LoginDecision(BaseModel):
    """The access decision for a login name, or why there is none (`status: unknown`)."""

    login_name: str = Field(description="the name asked about, as given")
    account_id: str | None = Field(description="the matching client's encoded_account_id")
    allowed: bool
    status: str = Field(
        description="the client's status, or `unknown` when the name matches no client"
    )
    reason: str = Field(
        description="as by id; for `unknown`: `not_in_partner_list` (in none of our listings) "
        "or `no_complete_listing` (we never read the whole list)"
    )
    verified_at: datetime | None
    stale: bool
    matched_by: str | None = Field(description="`login_name` or `site_owner_name`")
    last_complete_listing_at: datetime | None = Field(
        description="when our partner list was last read to its end (audit, import or fresh "
        "lookup); a name in no listing was not in that one"
    )
