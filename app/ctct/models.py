"""The `ctct_budget` table: one row per CTCT API key (by fingerprint), shared by every process."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, Integer, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class CtctBudget(Base):
    """Recent grant times (sliding window), today's count (UTC), a shared 429 penalty, and until
    when a waiting caller of each priority holds lower priorities back."""

    __tablename__ = "ctct_budget"
    __table_args__ = (CheckConstraint("quota_used >= 0", name="quota_used_not_negative"),)

    key_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    recent_granted_at: Mapped[list[datetime]] = mapped_column(
        ARRAY(DateTime(timezone=True)), server_default=text("'{}'")
    )
    quota_day: Mapped[date] = mapped_column(Date)
    quota_used: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    penalty_ends_at: Mapped[datetime | None]
    # When the next call is due on the even schedule. Late calls move their slots on record,
    # not this: the calls after one take its lateness back (`app.ctct.pacing`).
    paced_until: Mapped[datetime | None]
    # The UTC day `ctct.quota_low` was sent for this key (once per day, across processes).
    quota_low_day: Mapped[date | None] = mapped_column(Date)
    interactive_waiting_until: Mapped[datetime | None]
    first_attempt_waiting_until: Mapped[datetime | None]
    retry_waiting_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
