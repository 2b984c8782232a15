"""Request and response shapes of the membership routes (registration, probes, CTCT webhooks)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.clients.schemas import AccountId
from app.kit.inputs import BEARER_VALUE, InputModel

ACCESS_TOKEN_MAX = 8192


class RegisterClient(InputModel):
    """An account the product has seen, and optionally its user's token."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"encoded_account_id": "a07e1lxqqqo0", "access_token": "eyJraWQiOi..."}]
        }
    )

    encoded_account_id: AccountId
    access_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=ACCESS_TOKEN_MAX,
        pattern=f"^{BEARER_VALUE.pattern}$",
        description="the user's CTCT OAuth access token (a bearer token: ASCII letters, digits "
        "and - . _ ~ + /): used once for /account/summary, never stored, logged or echoed",
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


class CtctNotification(BaseModel):
    """What CTCT POSTs to `/v1/ctct/webhooks` (NOTES §2.9-2.13); only documented here: the body
    is read as raw bytes, because the signature covers exactly those bytes."""

    model_config = ConfigDict(
        title="CtctNotification",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://api.cc.email/v3/partner/accounts/a07e1lxqqqo0/plan",
                    "api_key": "4a1c...",
                    "event_type": "tier.increase",
                }
            ]
        },
    )

    url: str = Field(
        max_length=2048, description="the account's plan URL: `.../partner/accounts/<id>/plan`"
    )
    event_type: str = Field(
        max_length=100, description="tier.increase, tier.decrease, account.cancelled, ..."
    )
    api_key: str | None = Field(default=None, max_length=200, description="not checked")


CTCT_NOTIFICATION_REF = "#/components/schemas/CtctNotification"
