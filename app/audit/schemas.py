"""What the audit endpoints return."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, computed_field

from app.kit.pagination import Page


class AuditRunOut(BaseModel):
    """One audit run: its progress, what it spent and what it changed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    trigger: str
    requested_by: str | None
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    listing_completed: bool
    pages_read: int
    list_calls: int
    token_calls: int
    clients_seen: int
    clients_added: int
    clients_changed: int
    approved_before: int | None
    demotions: int
    held_demotions: int
    held_resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    error: str | None
    duration_ms: int | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ctct_calls(self) -> int:
        """List calls (with retries) plus token fetches."""
        return self.list_calls + self.token_calls


class HeldDemotionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: int
    encoded_account_id: str
    applied: bool | None


class AuditRunDetail(AuditRunOut):
    """A run with a page of the demotions it held (`limit` and `cursor` page them)."""

    held: Page[HeldDemotionOut]
