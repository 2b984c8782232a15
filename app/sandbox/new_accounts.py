"""New sandbox accounts: provisioned from a create body as CTCT does (at once, or once the 503
window that deferred the create has ended), or seeded by tests and the control API with
defaults that look like a partner's real clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.sandbox.accounts import Account, AccountBook, is_account_id
from app.sandbox.errors import InvalidInput
from app.sandbox.faults import Fault
from app.sandbox.plans import BILLING_STATUSES, PLAN_TYPES, TRIAL, TRIAL_LENGTH


def provisioned_account(partner: str | None, body: dict[str, Any], now: datetime) -> Account:
    """The account a valid create body describes (not yet stored: the book gives it its id)."""

    def text(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) else None

    return Account(
        encoded_account_id="",
        login_name=str(body["login_name"]),
        partner=partner,
        contact_email=str(body["contact_email"]),
        country_code=str(body["country_code"]).upper(),
        state_code=str(body["state_code"]).upper(),
        created_at=now,
        organization_name=text("organization_name"),
        first_name=text("first_name"),
        last_name=text("last_name"),
        contact_phone=text("contact_phone"),
        organization_phone=text("organization_phone"),
        website=text("website"),
        time_zone_id=text("time_zone_id"),
        billing_locale=text("billing_locale") or "en_US",
        partner_account_id=text("partner_account_id"),
        managed=body.get("managed_site_owner") is True,
        provision_uuid=str(uuid.uuid4()),
    )


@dataclass(slots=True)
class DeferredCreate:
    """A create answered 503: CTCT stores it and provisions it once the outage is over."""

    partner: str | None
    body: dict[str, Any]
    fault: Fault


def provision_due(
    deferred: list[DeferredCreate], book: AccountBook, now: datetime
) -> list[DeferredCreate]:
    """Store, in order, the deferred creates whose 503 window has ended; return the others."""
    waiting: list[DeferredCreate] = []
    for create in deferred:
        if create.fault.active(now):
            waiting.append(create)
            continue
        # A body whose login name got taken meanwhile is dropped, as CTCT would.
        if not book.login_taken(str(create.body["login_name"])):
            book.add(provisioned_account(create.partner, create.body, now))
    return waiting


def seed_account(
    book: AccountBook,
    now: datetime,
    *,
    partner: str | None,
    login_name: str | None,
    encoded_account_id: str | None,
    organization_name: str | None,
    contact_email: str | None,
    first_name: str | None,
    last_name: str | None,
    country_code: str,
    state_code: str,
    plan_type: str | None,
    billing_status: str,
    billing_day_of_month: int | None,
    subscriber_count: int,
    last_login_date: datetime | None,
    managed: bool,
    created_at: datetime | None,
) -> Account:
    """Store one seeded account under the stored partner key `partner`; unset fields get
    defaults consistent with the billing status ("Trial End": created a trial length ago)."""
    if billing_status not in BILLING_STATUSES:
        raise InvalidInput(f"billing_status must be one of {', '.join(BILLING_STATUSES)}")
    if plan_type is None:
        plan_type = TRIAL if billing_status in ("Trial", "Trial End") else "BRONZE"
    if plan_type not in PLAN_TYPES:
        raise InvalidInput(f"plan_type must be one of {', '.join(PLAN_TYPES)}")
    if encoded_account_id is not None and not is_account_id(encoded_account_id):
        raise InvalidInput("encoded_account_id must be 'a0' and 10 lower-case alphanumerics")
    if login_name is None:
        login_name = f"seed{free_number(book, 'seed', len(book) + 1)}"
    if billing_status != "Trial" and plan_type != TRIAL and billing_day_of_month is None:
        billing_day_of_month = now.day
    if created_at is None:
        created_at = now - TRIAL_LENGTH if billing_status == "Trial End" else now
    account = Account(
        encoded_account_id=encoded_account_id or "",
        login_name=login_name,
        partner=partner,
        contact_email=contact_email or f"{login_name.lower()}@example.com",
        country_code=country_code,
        state_code=state_code,
        created_at=created_at,
        organization_name=organization_name or f"{login_name} Inc.",
        first_name=first_name,
        last_name=last_name,
        managed=managed,
        plan_type=plan_type,
        billing_status="Trial" if billing_status == "Trial End" else billing_status,
        billing_day_of_month=billing_day_of_month,
        subscriber_count=subscriber_count,
        last_login_date=last_login_date,
        cancel_effective_at=now if billing_status == "Canceled" else None,
    )
    return book.add(account)


def seed_trials(
    book: AccountBook, count: int, now: datetime, *, partner: str | None, login_prefix: str
) -> list[Account]:
    """Store `count` trial accounts named `<login_prefix><n>` (skipping names in use)."""
    created: list[Account] = []
    number = 0
    for _ in range(count):
        number = free_number(book, login_prefix, number + 1)
        login_name = f"{login_prefix}{number}"
        account = Account(
            encoded_account_id="",
            login_name=login_name,
            partner=partner,
            contact_email=f"{login_name.lower()}@example.com",
            country_code="US",
            state_code="MA",
            created_at=now,
            organization_name=f"{login_name} Inc.",
            first_name="Seed",
            last_name=f"Owner {number}",
            subscriber_count=(number * 37) % 5000,
        )
        created.append(book.add(account))
    return created


def free_number(book: AccountBook, prefix: str, start: int) -> int:
    """The first n >= `start` for which the login name `<prefix><n>` is free."""
    number = start
    while book.login_taken(f"{prefix}{number}"):
        number += 1
    return number
