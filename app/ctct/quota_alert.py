"""`ctct.quota_low`: tell operations, once per UTC day and API key, that today's calls run low.

The budget asks `due` after each grant (no I/O); the first grant that leaves
`CTCT_QUOTA_LOW_THRESHOLD` or fewer calls today marks the key's budget row for the day in the
grant's own transaction, and the process that marks it tells `notify` there too, so across
every replica the event is sent once per day. The budget speaks no webhooks: the entry points
hand it `notify` (the webhooks domain's `announce_quota_low`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime

import structlog
from sqlalchemy import Table, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.ctct.models import CtctBudget

log = structlog.get_logger(__name__)

_table: Table = CtctBudget.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class QuotaLow:
    """Today's use crossed the threshold (first crossing of the day, across every replica)."""

    day: date
    used: int
    daily_quota: int
    threshold: int
    resets_at: datetime


# Told in the grant's own transaction (the session is bound to it) when the quota runs low.
QuotaLowHook = Callable[[AsyncSession, QuotaLow], Awaitable[object]]


class QuotaAlert:
    """Decides when today's use crosses the threshold and records the crossing once."""

    def __init__(
        self, *, daily_quota: int, threshold: int, notify: QuotaLowHook | None = None
    ) -> None:
        self._daily_quota = daily_quota
        self._threshold = threshold
        self._notify = notify
        # The day this process already saw marked (it need not ask the database again).
        self._marked_day: date | None = None

    def due(self, day: date, used: int) -> bool:
        """Whether `used` calls today leave the threshold or fewer and the day is not marked."""
        return (
            self._threshold > 0
            and self._daily_quota - used <= self._threshold
            and self._marked_day != day
        )

    async def record(
        self,
        conn: AsyncConnection,
        fingerprint: str,
        *,
        day: date,
        used: int,
        resets_at: datetime,
    ) -> bool:
        """Mark the day on the key's row and emit the event; False if another process had."""
        self._marked_day = day
        marked = await conn.execute(
            update(_table)
            .where(
                _table.c.key_fingerprint == fingerprint,
                or_(_table.c.quota_low_day.is_(None), _table.c.quota_low_day != day),
            )
            .values(quota_low_day=day)
            .returning(_table.c.key_fingerprint)
        )
        if marked.first() is None:
            return False
        if self._notify is not None:
            session = AsyncSession(bind=conn)
            try:
                low = QuotaLow(day, used, self._daily_quota, self._threshold, resets_at)
                await self._notify(session, low)
            finally:
                await session.close()
        log.warning(
            "ctct.budget.quota_low",
            used=used,
            daily_quota=self._daily_quota,
            threshold=self._threshold,
        )
        return True
