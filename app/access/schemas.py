"""Request and response shapes of the access API (the responses document what the hot path
builds as plain dicts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from app.kit.inputs import InputModel

MAX_BATCH = 1_000


class AccessDecision(BaseModel):
    account_id: str
    allowed: bool
    status: str = Field(
        description="approved, billing_approved, other_partner, unaffiliated or unverified"
    )
    reason: str = Field(
        description="the status, `unaffiliated_allowed`, `unverified` (unknown or never "
        "confirmed), or `ctct_unavailable` (a fresh check CTCT could not answer)"
    )
    verified_at: datetime | None = Field(description="when CTCT evidence last confirmed it")
    stale: bool = Field(description="not verified within MEMBERSHIP_TTL; a re-probe is under way")


class AccessBatchRequest(InputModel):
    account_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="encoded_account_ids (each 1-64 of A-Z a-z 0-9 _ -); duplicates allowed",
        examples=[["a07e1lxqqqo0", "a08e1izvh8t9"]],
    )


class AccessBatchResponse(BaseModel):
    decisions: list[AccessDecision]
