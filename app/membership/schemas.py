"""Request and response shapes of the membership routes (registration, probes, CTCT webhooks)."""

from __future__ import annotations

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
