"""What `GET /v1/stats` returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class LastAudit(BaseModel):
    id: int
    state: str
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Outbox(BaseModel):
    depth: int
    oldest_created_at: datetime | None


class Quota(BaseModel):
    day: str
    used: int
    daily_quota: int
    remaining_interactive: int
    remaining_background: int


class Stats(BaseModel):
    clients_by_status: dict[str, int]
    clients_total: int
    last_audit: LastAudit | None
    provisioning_outbox: Outbox | None
    ctct_quota: Quota | None
