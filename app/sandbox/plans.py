"""Billing plans and the account state machine of NOTES §6.

(new) -> TRIAL/Trial; Trial -> X/Open (day from the body or today); Open -> TRIAL is refused;
an unknown plan is refused; cancel -> Canceled at its effective date; Canceled -> X/Open
(reactivation); Trial -> Trial End after 60 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.sandbox.accounts import Account
from app.sandbox.timefmt import iso

TRIAL = "TRIAL"
# The current plans plus two older ones CTCT says "will continue to be supported".
PLAN_TYPES = ("TRIAL", "BRONZE", "SILVER", "GOLD", "EMAIL", "EMAIL_PLUS")
BILLING_STATUSES = ("Trial", "Open", "Canceled", "Trial End")
CANCEL_REASONS: dict[int, str] = {
    1: "Cost Too High",
    2: "Using A Competitive Service",
    3: "Not Doing Email Marketing",
    11: "Something Missing Or Not Working",
    12: "Doing It In-House",
    14: "Poor Results",
    21: "Too Difficult To Use",
    27: "Canceled Online by Customer",
    30: "Dissatisfied With Billing Policies",
}
TRIAL_LENGTH = timedelta(days=60)
CONTACTS_PER_TIER = 500
_MONTHLY_PRICE_PER_TIER = {
    "TRIAL": 0.0,
    "BRONZE": 12.0,
    "SILVER": 35.0,
    "GOLD": 80.0,
    "EMAIL": 20.0,
    "EMAIL_PLUS": 45.0,
}


class PlanRejected(Exception):
    """CTCT would answer 400 to this plan change."""


def billing_status(account: Account, now: datetime) -> str:
    """The status CTCT would report at `now` (a future cancellation or trial end applies then)."""
    if account.cancel_effective_at is not None and account.cancel_effective_at <= now:
        return "Canceled"
    if account.billing_status == "Trial" and now >= account.created_at + TRIAL_LENGTH:
        return "Trial End"
    return account.billing_status


def change_plan(account: Account, plan_type: str, billing_day: int | None, now: datetime) -> None:
    """Apply `PUT .../plan`, or raise `PlanRejected` with the reason."""
    if plan_type not in PLAN_TYPES:
        raise PlanRejected(f"plan_type {plan_type} is not in the account's plan group")
    status = billing_status(account, now)
    if plan_type == TRIAL:
        if account.plan_type == TRIAL and status in ("Trial", "Trial End"):
            return
        raise PlanRejected("plan_type cannot change back to TRIAL")
    if status == "Canceled":
        account.cancel_effective_at = None
        account.cancel_reason_id = None
        if account.billing_day_of_month is None:
            account.billing_day_of_month = billing_day or now.day
    elif account.plan_type == TRIAL:
        # The day counts only on the change away from TRIAL; elsewhere CTCT ignores it.
        account.billing_day_of_month = billing_day or now.day
    account.plan_type = plan_type
    account.billing_status = "Open"


def cancel(account: Account, effective_at: datetime, reason_id: int | None) -> None:
    """Apply `PUT .../status/cancel`: Canceled from `effective_at` (now or in the future)."""
    account.cancel_effective_at = effective_at
    account.cancel_reason_id = reason_id


def plan_tiers(account: Account, now: datetime) -> dict[str, Any]:
    """The account's plan as a `PlanTiersObject`; during a trial the billing day is null."""
    tier = 1 + account.subscriber_count // CONTACTS_PER_TIER
    body: dict[str, Any] = {
        "plan_type": account.plan_type,
        "current_tiers": [
            {
                "usage_type": "CONTACTS",
                "current_usage": float(account.subscriber_count),
                "tier": tier,
                "tier_min": float((tier - 1) * CONTACTS_PER_TIER),
                "tier_max": float(tier * CONTACTS_PER_TIER),
                "price": _MONTHLY_PRICE_PER_TIER.get(account.plan_type, 0.0) * tier,
                "currency_code": "GBP" if account.billing_locale.lower() == "en_gb" else "USD",
            }
        ],
        "billing_status": billing_status(account, now),
        # The contract's example always has it; its description: "for trial accounts, the
        # value is initially set to null".
        "billing_day_of_month": account.billing_day_of_month,
    }
    return body


def cancellation(account: Account) -> dict[str, Any]:
    """The account's cancellation as an `AccountCancellation`."""
    body: dict[str, Any] = {"effective_date": iso(account.cancel_effective_at)}
    if account.cancel_reason_id is not None:
        body["reason_id"] = account.cancel_reason_id
    return body
