"""Request shapes of the membership routes."""

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
