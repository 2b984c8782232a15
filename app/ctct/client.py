"""The CTCT client: the only code in partnergate that sends HTTP to Constant Contact.

One method per CTCT operation: it builds the call, says whether it is a read (retried a bounded
number of times on retryable errors) or a write (never retried after an ambiguous outcome;
account creation is never retried here, the provisioning outbox owns that), and reads the answer
into a typed result. `call_sender.CallSender` sends each call: budget, credentials, the one token
renewal on a 401, retries, and every status mapped to a `CtctError`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ctct import call_meter
from app.ctct.auth import PartnerTokenProvider
from app.ctct.budget import CallBudget
from app.ctct.call_sender import CallSender, CtctCall, http_timeout
from app.ctct.errors import CtctAuthError, CtctServerError
from app.ctct.priorities import Priority
from app.ctct.quota_alert import QuotaLowHook
from app.ctct.schemas import (
    AccountPage,
    AccountSummary,
    Cancellation,
    Plan,
    ProvisionResult,
    SiteOwner,
)
from app.db import create_engine
from app.kit.inputs import BEARER_VALUE
from app.settings import CtctSettings

M = TypeVar("M", bound=BaseModel)

LIST_LIMIT_MIN = 10
LIST_LIMIT_MAX = 50
# Per process: one grant per priority in flight, slot moves, the 429 and quota records.
BUDGET_POOL_SIZE = 2
BUDGET_POOL_OVERFLOW = 4


def json_body(response: httpx.Response, call: CtctCall) -> object:
    """An answer's JSON body; a `CtctServerError` when CTCT's body is not JSON."""
    try:
        body: object = response.json()
    except ValueError as exc:
        raise CtctServerError(
            "CTCT answered with a body that is not JSON",
            status=response.status_code,
            operation=call.operation,
        ) from exc
    return body


class CtctClient:
    """One method per CTCT operation, with typed results and `CtctError`s."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: CtctSettings,
        tokens: PartnerTokenProvider,
        budget: CallBudget,
        *,
        retry_base_seconds: float = 0.5,
        retry_cap_seconds: float = 8.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        owns_http: bool = False,
    ) -> None:
        self._http = http
        self._budget = budget
        self._owns_http = owns_http
        self._base = settings.base_url.rstrip("/")
        self._origin = httpx.URL(self._base)
        self._sender = CallSender(
            http,
            settings,
            tokens,
            budget,
            retry_base_seconds=retry_base_seconds,
            retry_cap_seconds=retry_cap_seconds,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        )

    @property
    def budget(self) -> CallBudget:
        """The shared call budget (for /v1/stats: `remaining_today()`, `snapshot()`)."""
        return self._budget

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it, and the budget's own connections."""
        if self._owns_http:
            await self._http.aclose()
        await self._budget.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def create_account(
        self,
        body: Mapping[str, object],
        *,
        priority: Priority = Priority.FIRST_ATTEMPT,
        max_wait: float | None = None,
    ) -> ProvisionResult:
        """`POST /partner/accounts`, sent once: a 503, 429 or timeout is raised, never retried.

        `priority`: FIRST_ATTEMPT for a first attempt, RETRY for the ones after it.
        """
        password = body.get("password")
        call = CtctCall(
            "create_account",
            "POST",
            self._url("/partner/accounts"),
            json=body,
            secrets=(password,) if isinstance(password, str) else (),
        )
        response = await self._sender.send(call, priority=priority, retry=False, max_wait=max_wait)
        return self._parse(ProvisionResult, response, call)

    async def list_accounts_page(
        self,
        *,
        limit: int = LIST_LIMIT_MAX,
        next_href: str | None = None,
        account_type: str | None = None,
        priority: Priority = Priority.BACKGROUND,
        max_wait: float | None = None,
    ) -> AccountPage:
        """One page of `GET /partner/accounts`; pass the previous page's `next_href` to go on."""
        if next_href is None:
            params = {"limit": str(max(LIST_LIMIT_MIN, min(LIST_LIMIT_MAX, limit)))}
            if account_type is not None:
                params["account_type"] = account_type
            url = self._url("/partner/accounts")
            call = CtctCall("list_accounts", "GET", url, params=params)
        else:
            call = CtctCall("list_accounts", "GET", self._follow(next_href))
        response = await self._sender.send(call, priority=priority, retry=True, max_wait=max_wait)
        body = json_body(response, call)
        if not isinstance(body, dict) or not isinstance(body.get("site_owner_list"), list):
            raise CtctServerError(
                "the account list has no site_owner_list",
                status=response.status_code,
                operation=call.operation,
            )
        links = body.get("_links")
        next_link = links.get("next") if isinstance(links, dict) else None
        href = next_link.get("href") if isinstance(next_link, dict) else None
        try:
            accounts = [SiteOwner.model_validate(item) for item in body["site_owner_list"]]
        except ValidationError as exc:
            raise CtctServerError(
                "the account list has an unreadable entry",
                status=response.status_code,
                operation=call.operation,
            ) from exc
        return AccountPage(accounts=accounts, next_href=href if isinstance(href, str) else None)

    async def iter_account_pages(
        self,
        *,
        limit: int = LIST_LIMIT_MAX,
        account_type: str | None = None,
        priority: Priority = Priority.BACKGROUND,
        max_wait: float | None = None,
    ) -> AsyncIterator[AccountPage]:
        """Every page of our partner list, following `_links.next.href` (one call per page)."""
        href: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_accounts_page(
                limit=limit,
                next_href=href,
                account_type=account_type,
                priority=priority,
                max_wait=max_wait,
            )
            yield page
            if not page.next_href:
                return
            if page.next_href in seen:
                raise CtctServerError(
                    "the account list links back to a page already read",
                    operation="list_accounts",
                )
            seen.add(page.next_href)
            href = page.next_href

    async def iter_accounts(
        self,
        *,
        limit: int = LIST_LIMIT_MAX,
        account_type: str | None = None,
        priority: Priority = Priority.BACKGROUND,
        max_wait: float | None = None,
    ) -> AsyncIterator[SiteOwner]:
        """Every account under our partner, each once, across all pages."""
        seen: set[str] = set()
        async for page in self.iter_account_pages(
            limit=limit,
            account_type=account_type,
            priority=priority,
            max_wait=max_wait,
        ):
            for account in page.accounts:
                if account.encoded_account_id not in seen:
                    seen.add(account.encoded_account_id)
                    yield account

    async def get_plan(
        self,
        encoded_account_id: str,
        *,
        priority: Priority = Priority.INTERACTIVE,
        max_wait: float | None = None,
    ) -> Plan:
        """`GET /partner/accounts/{id}/plan`: a 200 proves the account is ours."""
        call = CtctCall(
            "get_plan",
            "GET",
            self._account_url(encoded_account_id, "/plan"),
            encoded_account_id=encoded_account_id,
        )
        response = await self._sender.send(call, priority=priority, retry=True, max_wait=max_wait)
        return self._parse(Plan, response, call)

    async def set_plan(
        self,
        encoded_account_id: str,
        plan_type: str,
        billing_day_of_month: int | None = None,
        plan_group_id: int | None = None,
        *,
        max_wait: float | None = None,
    ) -> Plan:
        """`PUT /partner/accounts/{id}/plan` (also reactivates a canceled account); not retried."""
        body: dict[str, object] = {"plan_type": plan_type}
        if billing_day_of_month is not None:
            body["billing_day_of_month"] = billing_day_of_month
        if plan_group_id is not None:
            body["plan_group_id"] = plan_group_id
        call = CtctCall(
            "set_plan",
            "PUT",
            self._account_url(encoded_account_id, "/plan"),
            json=body,
            encoded_account_id=encoded_account_id,
        )
        response = await self._sender.send(
            call, priority=Priority.INTERACTIVE, retry=False, max_wait=max_wait
        )
        return self._parse(Plan, response, call)

    async def cancel(
        self,
        encoded_account_id: str,
        effective_date: datetime | None = None,
        reason_id: int | None = None,
        *,
        max_wait: float | None = None,
    ) -> Cancellation:
        """`PUT /partner/accounts/{id}/status/cancel`; not retried."""
        body: dict[str, object] = {}
        if effective_date is not None:
            body["effective_date"] = _iso(effective_date)
        if reason_id is not None:
            body["reason_id"] = reason_id
        call = CtctCall(
            "cancel",
            "PUT",
            self._account_url(encoded_account_id, "/status/cancel"),
            json=body,
            encoded_account_id=encoded_account_id,
        )
        response = await self._sender.send(
            call, priority=Priority.INTERACTIVE, retry=False, max_wait=max_wait
        )
        return self._parse(Cancellation, response, call)

    async def account_summary(
        self, user_access_token: str, *, max_wait: float | None = None
    ) -> AccountSummary:
        """`GET /account/summary` with a user's OAuth token (used once, never kept or logged).

        The contract declares only the user's OAuth token for this operation (no `x-api-key`);
        a token that cannot be a bearer token is refused before any budget is spent.
        """
        if BEARER_VALUE.fullmatch(user_access_token) is None:
            raise CtctAuthError(
                "the user's access token is not a bearer token", operation="account_summary"
            )
        call = CtctCall(
            "account_summary", "GET", self._url("/account/summary"), partner_credentials=False
        )
        response = await self._sender.send(
            call,
            priority=Priority.INTERACTIVE,
            retry=True,
            max_wait=max_wait,
            user_token=user_access_token,
        )
        return self._parse(AccountSummary, response, call)

    async def send(
        self,
        call: CtctCall,
        *,
        priority: Priority = Priority.INTERACTIVE,
        retry: bool,
        max_wait: float | None = None,
    ) -> httpx.Response:
        """Send a call built elsewhere in `app.ctct` (e.g. `partner_webhooks`): 2xx or an error."""
        return await self._sender.send(call, priority=priority, retry=retry, max_wait=max_wait)

    def url(self, path: str) -> str:
        """The absolute URL of an API path (`/partner/...`)."""
        return self._base + path

    def _url(self, path: str) -> str:
        return self._base + path

    def _account_url(self, encoded_account_id: str, suffix: str) -> str:
        return self._url("/partner/accounts/" + quote(encoded_account_id, safe="") + suffix)

    def _follow(self, href: str) -> str:
        # The href is a path like /v3/partner/accounts?offset=…, relative to the API's origin;
        # anything pointing elsewhere would receive our credentials, so it is refused.
        target = self._origin.join(href)
        if (target.scheme, target.host, target.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise CtctServerError(
                "the next-page link points outside the CTCT API", operation="list_accounts"
            )
        return str(target)

    def _parse(self, model: type[M], response: httpx.Response, call: CtctCall) -> M:
        body = json_body(response, call)
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise CtctServerError(
                f"CTCT answered with an unexpected {model.__name__} body",
                status=response.status_code,
                operation=call.operation,
            ) from exc


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("effective_date must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_ctct_client(
    settings: CtctSettings,
    *,
    engine: AsyncEngine,
    transport: httpx.AsyncBaseTransport | None = None,
    on_request: Callable[[httpx.Request], Awaitable[None]] | None = None,
    on_quota_low: QuotaLowHook | None = None,
) -> CtctClient:
    """A client with its own HTTP pool, token provider and budget (which shares the database).

    Every request sent, token fetches included, is counted for the work metering it
    (`call_meter.metering`); `on_request` sees each one too.
    """
    hooks = [call_meter.count_call, *([on_request] if on_request else [])]
    http = httpx.AsyncClient(
        transport=transport,
        timeout=http_timeout(settings),
        follow_redirects=False,
        event_hooks={"request": hooks},
    )
    # The budget's own few connections to the same database: its short transactions pace
    # every CTCT call, and must never queue behind a flood of requests for a pooled connection.
    budget_engine = create_engine(
        engine.url, pool_size=BUDGET_POOL_SIZE, max_overflow=BUDGET_POOL_OVERFLOW
    )
    return CtctClient(
        http,
        settings,
        PartnerTokenProvider(http, settings),
        CallBudget(budget_engine, settings, on_quota_low=on_quota_low, owns_engine=True),
        owns_http=True,
    )
