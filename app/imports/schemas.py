"""What the imports API returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ImportOut(BaseModel):
    """An import: its progress and, once applied, how many rows ended each way."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str = Field(description="queued, running, completed or failed")
    phase: str = Field(description="waiting, listing, probing, applying or done")
    dry_run: bool = Field(description="computed every row's outcome and changed no client")
    filename: str | None
    requested_by: str | None
    rows_total: int
    rows_done: int
    pages_read: int = Field(description="pages of our partner list read (50 accounts each)")
    list_calls: int = Field(description="CTCT list calls spent (retries included)")
    probe_calls: int = Field(description="CTCT plan probes spent on accounts we did not list")
    token_calls: int
    outcomes: dict[str, int] = Field(
        description="rows by outcome: added, already_so, approved_by_evidence, "
        "billing_approved, refused, not_found"
    )
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    report_url: str = Field(description="the per-row report as CSV")
