"""Client accounts and the indexes that keep lookups and paging cheap at 100k accounts."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.sandbox.timefmt import iso

AccountType = Literal["all", "managed", "unmanaged"]
ACCOUNT_TYPES: tuple[AccountType, ...] = ("all", "managed", "unmanaged")

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Maps every byte to a character; the modulo bias is harmless for ids that only need to be unique.
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[byte % len(_ALPHABET)]) for byte in range(256))
ID_PREFIX = "a0"
ID_RANDOM_LENGTH = 10


class LoginNameTaken(Exception):
    """The login name is already used by another account (case-insensitive)."""


class AccountIdTaken(Exception):
    """The encoded account id is already used."""


@dataclass(slots=True, eq=False)
class Account:
    """One CTCT client account as the sandbox keeps it (the password is never kept)."""

    encoded_account_id: str
    login_name: str
    partner: str | None
    contact_email: str
    country_code: str
    state_code: str
    created_at: datetime
    organization_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    contact_phone: str | None = None
    organization_phone: str | None = None
    website: str | None = None
    time_zone_id: str | None = None
    billing_locale: str = "en_US"
    partner_account_id: str | None = None
    managed: bool = True
    plan_type: str = "TRIAL"
    billing_status: str = "Trial"
    billing_day_of_month: int | None = None
    subscriber_count: int = 0
    last_login_date: datetime | None = None
    cancel_effective_at: datetime | None = None
    cancel_reason_id: int | None = None
    provision_uuid: str | None = None
    seq: int = 0

    @property
    def site_owner_name(self) -> str:
        # CTCT's CANCEL example and the contract's example show the login name (NOTES Q8).
        return self.login_name

    @property
    def account_type(self) -> AccountType:
        return "managed" if self.managed else "unmanaged"

    def to_json(self) -> dict[str, Any]:
        """Every stored attribute, for the control API."""
        return {
            "encoded_account_id": self.encoded_account_id,
            "login_name": self.login_name,
            "site_owner_name": self.site_owner_name,
            "partner": self.partner,
            "organization_name": self.organization_name,
            "contact_email": self.contact_email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "contact_phone": self.contact_phone,
            "organization_phone": self.organization_phone,
            "website": self.website,
            "time_zone_id": self.time_zone_id,
            "country_code": self.country_code,
            "state_code": self.state_code,
            "billing_locale": self.billing_locale,
            "partner_account_id": self.partner_account_id,
            "managed": self.managed,
            "plan_type": self.plan_type,
            "billing_status": self.billing_status,
            "billing_day_of_month": self.billing_day_of_month,
            "subscriber_count": self.subscriber_count,
            "last_login_date": iso(self.last_login_date),
            "cancel_effective_at": iso(self.cancel_effective_at),
            "cancel_reason_id": self.cancel_reason_id,
            "provision_uuid": self.provision_uuid,
            "created_at": iso(self.created_at),
        }


def new_account_id() -> str:
    """A random id shaped like CTCT's: "a0" and 10 lower-case alphanumerics."""
    return ID_PREFIX + os.urandom(ID_RANDOM_LENGTH).translate(_BYTE_TO_CHAR).decode("ascii")


def is_account_id(value: str) -> bool:
    """Whether `value` has the shape of an encoded account id."""
    rest = value[len(ID_PREFIX) :]
    return (
        value.startswith(ID_PREFIX)
        and len(rest) == ID_RANDOM_LENGTH
        and all(char in _ALPHABET for char in rest)
    )


def _by_seq(account: Account) -> int:
    return account.seq


class AccountBook:
    """All accounts, by id and login name, plus per-partner lists in creation order."""

    def __init__(self) -> None:
        self._by_id: dict[str, Account] = {}
        self._by_login: dict[str, Account] = {}
        self._lists: dict[tuple[str | None, AccountType], list[Account]] = {}
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_id.values())

    def get(self, encoded_account_id: str) -> Account | None:
        """The account with this id, if any."""
        return self._by_id.get(encoded_account_id)

    def by_login(self, login_name: str) -> Account | None:
        """The account with this login name (case-insensitive), if any."""
        return self._by_login.get(login_name.lower())

    def login_taken(self, login_name: str) -> bool:
        """Whether another account already uses this login name (case-insensitive)."""
        return login_name.lower() in self._by_login

    def fresh_id(self) -> str:
        """An unused encoded account id."""
        while True:
            candidate = new_account_id()
            if candidate not in self._by_id:
                return candidate

    def add(self, account: Account) -> Account:
        """Store a new account, giving it the next seq and, when its id is "", a fresh id.

        Raises `LoginNameTaken` or `AccountIdTaken` on a clash.
        """
        if self.login_taken(account.login_name):
            raise LoginNameTaken(account.login_name)
        if not account.encoded_account_id:
            account.encoded_account_id = self.fresh_id()
        elif account.encoded_account_id in self._by_id:
            raise AccountIdTaken(account.encoded_account_id)
        account.seq = self._next_seq
        self._next_seq += 1
        self._by_id[account.encoded_account_id] = account
        self._by_login[account.login_name.lower()] = account
        # A new account has the highest seq, so appending keeps every list in creation order.
        for key in self._keys(account):
            self._lists.setdefault(key, []).append(account)
        return account

    def move(self, account: Account, partner: str | None) -> None:
        """Put `account` under another partner (or none), keeping lists in creation order."""
        if account.partner == partner:
            return
        for key in self._keys(account):
            members = self._lists[key]
            position = bisect.bisect_left(members, account.seq, key=_by_seq)
            del members[position]
        account.partner = partner
        for key in self._keys(account):
            bisect.insort(self._lists.setdefault(key, []), account, key=_by_seq)

    def members(self, partner: str | None, account_type: AccountType = "all") -> list[Account]:
        """The accounts of one partner (None: unaffiliated) in creation order; do not mutate."""
        return self._lists.get((partner, account_type), [])

    def clear(self) -> None:
        """Forget every account."""
        self._by_id.clear()
        self._by_login.clear()
        self._lists.clear()

    @staticmethod
    def _keys(account: Account) -> tuple[tuple[str | None, AccountType], ...]:
        return ((account.partner, "all"), (account.partner, account.account_type))
