"""What a status means for access (DESIGN.md §3), for every place that states it outside the hot
path: outgoing events (`allowed`) and the lookup by login name."""

from __future__ import annotations

from app.clients.models import ClientStatus
from app.settings import UnaffiliatedAccess

_ALWAYS_ALLOWED = frozenset({ClientStatus.APPROVED.value, ClientStatus.BILLING_APPROVED.value})


def allows(status: str, unaffiliated: UnaffiliatedAccess) -> bool:
    """Whether a client holding `status` may use the integration."""
    if status == ClientStatus.UNAFFILIATED.value:
        return unaffiliated is UnaffiliatedAccess.ALLOW
    return status in _ALWAYS_ALLOWED


def reason(status: str, unaffiliated: UnaffiliatedAccess) -> str:
    """The `reason` an access decision gives for `status`."""
    if status == ClientStatus.UNAFFILIATED.value and unaffiliated is UnaffiliatedAccess.ALLOW:
        return "unaffiliated_allowed"
    return status
