"""What the membership endpoints return."""

from __future__ import annotations

from pydantic import BaseModel


class CtctWebhookReceipt(BaseModel):
    """What became of one CTCT webhook: applied (200) or accepted and ignored (202)."""

    encoded_account_id: str
    event_type: str
    applied: bool
    reason: str
    status: str | None = None
    billing_status: str | None = None
    plan_type: str | None = None
