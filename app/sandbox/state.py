"""Everything the sandbox remembers, behind one lock.

Request handlers never await while changing state, so asyncio alone would keep it consistent;
the lock is for tests that inspect or drive a sandbox served from another thread
(`running_sandbox`). Each public method takes it; none holds it across an await.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from starlette.requests import Request

from app.ctct.provision_rules import validate_provision
from app.sandbox.accounts import ACCOUNT_TYPES, Account, AccountBook, AccountType
from app.sandbox.calls import CallLog, CallRecord
from app.sandbox.clock import SandboxClock
from app.sandbox.errors import InvalidInput
from app.sandbox.faults import Fault, FaultBook, FaultKind, FaultPlan, Operation
from app.sandbox.limits import DEFAULT_DAILY_QUOTA, DEFAULT_RATE_PER_SECOND, RateLimiter, Verdict
from app.sandbox.new_accounts import (
    DeferredCreate,
    provision_due,
    provisioned_account,
    seed_account,
    seed_trials,
)
from app.sandbox.partners import DEFAULT_PARTNERS, NO_PARTNER, OURS, Partner
from app.sandbox.plans import cancel as cancel_account
from app.sandbox.plans import change_plan as change_account_plan
from app.sandbox.subscriptions import SubscriptionBook
from app.sandbox.tokens import PartnerTokens, UserGrant, UserTokens

LOST_RESPONSE_MAX_SECONDS = 300.0


class UnknownPartner(InvalidInput):
    """A partner key the sandbox does not know."""


class UnknownAccount(LookupError):
    """An encoded account id the sandbox does not know."""


class SandboxState:
    """Partners, accounts, tokens, limits, faults and the call log of one sandbox."""

    def __init__(
        self,
        *,
        partners: Sequence[Partner] = DEFAULT_PARTNERS,
        rate_per_second: int = DEFAULT_RATE_PER_SECOND,
        daily_quota: int = DEFAULT_DAILY_QUOTA,
        clock: SandboxClock | None = None,
        token_secret: str | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.clock = clock or SandboxClock()
        self.partners: dict[str, Partner] = {partner.key: partner for partner in partners}
        self._by_api_key = {partner.api_key: partner for partner in partners}
        self._by_client_id = {partner.client_id: partner for partner in partners}
        self._default_limits = (rate_per_second, daily_quota)
        self.accounts = AccountBook()
        self.limiter = RateLimiter(rate_per_second, daily_quota)
        self.faults = FaultBook()
        self.calls = CallLog()
        self.subscriptions = SubscriptionBook()
        self.partner_tokens = PartnerTokens(token_secret)
        self.user_tokens = UserTokens()
        self.deferred: list[DeferredCreate] = []
        self.hanging_requests = 0
        self.lost_response_max_seconds = LOST_RESPONSE_MAX_SECONDS

    def now(self) -> datetime:
        """The sandbox clock's now."""
        return self.clock.now()

    # Partners and credentials

    def partner(self, key: str) -> Partner:
        """The partner with this key; raise `UnknownPartner` otherwise."""
        try:
            return self.partners[key]
        except KeyError:
            raise UnknownPartner(f"unknown partner {key!r}: use ours, other or none") from None

    def partner_key(self, name: str | None) -> str | None:
        """Map "ours"/"other"/"none" (or None) to a stored partner key (None: no partner)."""
        if name is None or name == NO_PARTNER:
            return None
        return self.partner(name).key

    def partner_for_api_key(self, api_key: str) -> Partner | None:
        """The partner owning `api_key`, if any."""
        return self._by_api_key.get(api_key)

    def partner_for_client(self, client_id: str, client_secret: str) -> Partner | None:
        """The partner with these client credentials, if they match."""
        partner = self._by_client_id.get(client_id)
        if partner is None or partner.client_secret != client_secret:
            return None
        return partner

    def mint_partner_token(self, partner: Partner) -> str:
        """A partner JWT for `partner`, valid for an hour of sandbox time."""
        with self._lock:
            return self.partner_tokens.mint(partner, self.now())

    def partner_for_token(self, token: str) -> Partner | None:
        """The partner a valid partner JWT was issued to."""
        with self._lock:
            client_id = self.partner_tokens.client_id_of(token, self.now())
        return None if client_id is None else self._by_client_id.get(client_id)

    def invalidate_partner_tokens(self) -> None:
        """Expire (or revoke: the effect is the same) every partner token issued so far."""
        with self._lock:
            self.partner_tokens.invalidate_all()

    def mint_user_token(
        self, encoded_account_id: str, *, api_key: str | None = None, token: str | None = None
    ) -> str:
        """A user access token for the account, used through `api_key` (default: ours)."""
        with self._lock:
            self.settle()
            if self.accounts.get(encoded_account_id) is None:
                raise UnknownAccount(encoded_account_id)
            key = api_key or self.partner(OURS).api_key
            return self.user_tokens.mint(encoded_account_id, key, token)

    def user_grant(self, token: str) -> UserGrant | None:
        """What a user token stands for, if it is known."""
        with self._lock:
            return self.user_tokens.grant(token)

    # Limits, faults, the call log

    def admit(self, api_key: str) -> Verdict:
        """Count one call against `api_key`'s limits, or say which limit refuses it."""
        with self._lock:
            return self.limiter.admit(api_key, self.now())

    def set_limits(
        self, *, rate_per_second: int | None = None, daily_quota: int | None = None
    ) -> None:
        """Change the per-key limits (counts already made stay)."""
        with self._lock:
            if rate_per_second is not None:
                if rate_per_second < 1:
                    raise InvalidInput("rate_per_second must be at least 1")
                self.limiter.rate_per_second = rate_per_second
            if daily_quota is not None:
                if daily_quota < 0:
                    raise InvalidInput("daily_quota must not be negative")
                self.limiter.daily_quota = daily_quota

    def limits(self) -> dict[str, Any]:
        """The limits and today's usage per API key."""
        with self._lock:
            return {
                "rate_per_second": self.limiter.rate_per_second,
                "daily_quota": self.limiter.daily_quota,
                "used_today": self.limiter.usage(self.now()),
            }

    def add_fault(
        self,
        kind: FaultKind | str,
        operation: Operation | str = Operation.ALL,
        *,
        count: int | None = None,
        seconds: float | None = None,
        delay_seconds: float = 0.0,
        after: int = 0,
    ) -> Fault:
        """Inject a fault for the next `count` calls and/or `seconds` of sandbox time
        (after `after` matching calls have passed)."""
        with self._lock:
            return self.faults.add(
                FaultKind(kind),
                Operation(operation),
                self.now(),
                count=count,
                seconds=seconds,
                delay_seconds=delay_seconds,
                after=after,
            )

    def take_faults(self, operation: Operation) -> FaultPlan:
        """The faults that apply to one call of `operation` (their counts are spent)."""
        with self._lock:
            return self.faults.take(operation, self.now())

    def remove_fault(self, fault_id: int) -> bool:
        """Remove one fault; its deferred creates are provisioned on the next settle."""
        with self._lock:
            return self.faults.remove(fault_id)

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self.faults.clear()

    def record_call(self, **fields: Any) -> None:
        """Add one call (`CallRecord`'s fields but `at`) to the call log, at sandbox time."""
        with self._lock:
            self.calls.record(CallRecord(at=self.now(), **fields))

    def advance_clock(self, seconds: float) -> datetime:
        """Move sandbox time forward."""
        with self._lock:
            return self.clock.advance(seconds)

    # Accounts

    def settle(self) -> None:
        """Provision, in order, the creates deferred by 503 windows that have ended."""
        with self._lock:
            if self.deferred:
                self.deferred = provision_due(self.deferred, self.accounts, self.now())

    def defer_provision(self, partner: str | None, body: dict[str, Any], fault: Fault) -> None:
        """Keep a create that met a 503 window, to provision once the window ends."""
        with self._lock:
            if not validate_provision(body):
                self.deferred.append(DeferredCreate(partner, body, fault))

    def provision(self, partner: str | None, body: dict[str, Any]) -> Account:
        """Create an account from a valid create body; raise `LoginNameTaken` on a clash."""
        with self._lock:
            self.settle()
            return self.accounts.add(provisioned_account(partner, body, self.now()))

    def seed_account(
        self,
        *,
        login_name: str | None = None,
        partner: str | None = OURS,
        encoded_account_id: str | None = None,
        organization_name: str | None = None,
        contact_email: str | None = None,
        first_name: str | None = "Sandy",
        last_name: str | None = "Box",
        country_code: str = "US",
        state_code: str = "MA",
        plan_type: str | None = None,
        billing_status: str = "Trial",
        billing_day_of_month: int | None = None,
        subscriber_count: int = 0,
        last_login_date: datetime | None = None,
        managed: bool = True,
        created_at: datetime | None = None,
    ) -> Account:
        """Put an account straight into the sandbox; `partner` is "ours", "other" or "none"."""
        with self._lock:
            self.settle()
            return seed_account(
                self.accounts,
                self.now(),
                partner=self.partner_key(partner),
                login_name=login_name,
                encoded_account_id=encoded_account_id,
                organization_name=organization_name,
                contact_email=contact_email,
                first_name=first_name,
                last_name=last_name,
                country_code=country_code,
                state_code=state_code,
                plan_type=plan_type,
                billing_status=billing_status,
                billing_day_of_month=billing_day_of_month,
                subscriber_count=subscriber_count,
                last_login_date=last_login_date,
                managed=managed,
                created_at=created_at,
            )

    def seed_accounts(
        self, count: int, *, partner: str | None = OURS, login_prefix: str = "seed"
    ) -> list[Account]:
        """Seed `count` trial accounts named `<login_prefix><n>` (skipping names in use)."""
        if count < 0:
            raise InvalidInput("count must not be negative")
        with self._lock:
            self.settle()
            return seed_trials(
                self.accounts,
                count,
                self.now(),
                partner=self.partner_key(partner),
                login_prefix=login_prefix,
            )

    def find(self, encoded_account_id: str) -> Account | None:
        """The account with this id, if any."""
        with self._lock:
            self.settle()
            return self.accounts.get(encoded_account_id)

    def find_by_login(self, login_name: str) -> Account | None:
        """The account with this login name (case-insensitive), if any."""
        with self._lock:
            self.settle()
            return self.accounts.by_login(login_name)

    def page(
        self, partner: str | None, account_type: AccountType, offset: int, limit: int
    ) -> tuple[list[Account], bool]:
        """One page of a partner's accounts in creation order, and whether more follow."""
        if account_type not in ACCOUNT_TYPES:
            raise InvalidInput(account_type)
        with self._lock:
            self.settle()
            members = self.accounts.members(partner, account_type)
            return members[offset : offset + limit], offset + limit < len(members)

    def list_accounts(self, partner: str | None = None) -> list[Account]:
        """Accounts in creation order: all (None), or of "ours", "other" or "none"."""
        with self._lock:
            self.settle()
            if partner is None:
                return list(self.accounts)
            return list(self.accounts.members(self.partner_key(partner)))

    def move(self, encoded_account_id: str, partner: str | None) -> Account:
        """Put an account under another partner ("ours", "other") or under none ("none")."""
        with self._lock:
            self.settle()
            account = self.accounts.get(encoded_account_id)
            if account is None:
                raise UnknownAccount(encoded_account_id)
            self.accounts.move(account, self.partner_key(partner))
            return account

    def change_plan(self, account: Account, plan_type: str, billing_day: int | None) -> None:
        """Apply a plan change (see `plans.change_plan`)."""
        with self._lock:
            change_account_plan(account, plan_type, billing_day, self.now())

    def cancel(
        self, account: Account, effective_at: datetime | None, reason_id: int | None
    ) -> None:
        """Cancel the account from `effective_at` (default now)."""
        with self._lock:
            cancel_account(account, effective_at or self.now(), reason_id)

    def reset(self) -> None:
        """Back to empty: no accounts, tokens, faults or calls; default limits; real time."""
        with self._lock:
            self.accounts.clear()
            self.limiter = RateLimiter(*self._default_limits)
            self.faults.clear()
            self.calls.clear()
            self.subscriptions.clear()
            self.partner_tokens.invalidate_all()
            self.user_tokens.clear()
            self.deferred.clear()
            self.clock.reset()

    def status(self) -> dict[str, Any]:
        """A summary of the sandbox for the control API."""
        with self._lock:
            self.settle()
            return {
                "now": self.now().isoformat(),
                "accounts": len(self.accounts),
                "deferred_creates": len(self.deferred),
                "hanging_requests": self.hanging_requests,
            }


def sandbox_state(request: Request) -> SandboxState:
    """The state of the sandbox app serving `request`."""
    return cast(SandboxState, request.app.state.sandbox)
