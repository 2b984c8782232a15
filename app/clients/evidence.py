"""What CTCT told us about an account, and the status that evidence implies (DESIGN.md §3)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from app.clients.models import ClientStatus, VerifiedVia
from app.ctct.schemas import SiteOwner


class Membership(enum.StrEnum):
    OURS = "ours"
    OTHER_PARTNER = "other_partner"
    NO_PARTNER = "no_partner"
    # Not ours, but CTCT did not say whose (e.g. a 404 from our plan endpoint).
    NOT_OURS_PARTNER_UNKNOWN = "not_ours_partner_unknown"
    # CTCT could not answer at all.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MirroredAttributes:
    """Account attributes CTCT reported; None means "not reported", never "erase"."""

    login_name: str | None = None
    site_owner_name: str | None = None
    organization_name: str | None = None
    contact_email: str | None = None
    billing_status: str | None = None
    plan_type: str | None = None
    encoded_partner_id: str | None = None
    subscriber_count: int | None = None
    last_login_date: datetime | None = None

    def reported(self) -> dict[str, object]:
        return {name: value for name, value in vars(self).items() if value is not None}


def listed_attributes(account: SiteOwner) -> MirroredAttributes:
    """What our partner list says about one of its accounts: the mirror the audit keeps, and
    every reading of the list (the audit's, provisioning's reconciliation) refreshes."""
    return MirroredAttributes(
        site_owner_name=account.site_owner_name,
        organization_name=account.organization_name,
        billing_status=account.billing_status,
        subscriber_count=account.subscriber_count,
        last_login_date=account.last_login_date,
    )


@dataclass(frozen=True)
class Evidence:
    """One observation of an account's membership."""

    membership: Membership
    via: VerifiedVia | None
    reason: str
    attributes: MirroredAttributes = field(default_factory=MirroredAttributes)


def evidence_status(membership: Membership) -> ClientStatus:
    """The status CTCT evidence alone implies."""
    return {
        Membership.OURS: ClientStatus.APPROVED,
        Membership.OTHER_PARTNER: ClientStatus.OTHER_PARTNER,
        Membership.NOT_OURS_PARTNER_UNKNOWN: ClientStatus.OTHER_PARTNER,
        Membership.NO_PARTNER: ClientStatus.UNAFFILIATED,
        Membership.UNKNOWN: ClientStatus.UNVERIFIED,
    }[membership]


def next_status(current: ClientStatus, membership: Membership) -> ClientStatus:
    """Apply the rules: ours wins from anywhere; a person's billing approval stands otherwise."""
    says = evidence_status(membership)
    if says is ClientStatus.APPROVED:
        return ClientStatus.APPROVED
    if current is ClientStatus.BILLING_APPROVED:
        return ClientStatus.BILLING_APPROVED
    if says is ClientStatus.UNVERIFIED:
        # "CTCT could not answer" never overrides what we already know.
        return current
    if membership is Membership.NOT_OURS_PARTNER_UNKNOWN and current in NOT_OURS:
        # Vaguer evidence does not overwrite a known partner (or known lack of one).
        return current
    return says


NOT_OURS = frozenset({ClientStatus.OTHER_PARTNER, ClientStatus.UNAFFILIATED})
