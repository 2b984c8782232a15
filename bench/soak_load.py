"""The soak's load: a mixed stream spread round-robin over the API processes, and a watcher
that makes billing decisions and times how long each takes to show on every API.

Connection errors and timeouts (a killed process) are counted apart from answers; a 5xx answer
is a server error. Registrations and provisioning requests whose API died are sent again to the
next API (provisioning with the same Idempotency-Key), as a client would.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

PROPAGATION_GIVE_UP_SECONDS = 5.0
PROPAGATION_POLL_SECONDS = 0.02
ATTEMPTS = 6
# The mix: access checks dominate, as in the product; billing decisions come from the watcher.
WEIGHTS = {"access": 84, "register": 10, "provision": 6}


@dataclass
class Api:
    name: str
    url: str
    http: httpx.AsyncClient
    up: bool = True


@dataclass
class Tally:
    """Everything the load saw."""

    requests: int = 0
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    connection_errors: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    registered: set[str] = field(default_factory=set)
    propagation_ms: list[float] = field(default_factory=list)
    propagation_misses: int = 0
    decisions: int = 0
    decision_conflicts: int = 0


def provision_body(login: str) -> dict[str, object]:
    return {
        "contact_email": f"{login}@example.com",
        "country_code": "US",
        "state_code": "MA",
        "login_name": login,
        "password": "Soak-secret-9471",
    }


class Load:
    """Requests at a steady rate, each to the next API in turn."""

    def __init__(
        self,
        apis: list[Api],
        *,
        known: list[str],
        to_register: list[str],
        run_id: str,
        tally: Tally,
    ) -> None:
        self.apis = apis
        self.known = known
        self.to_register = to_register
        self.run_id = run_id
        self.tally = tally
        self._turn = itertools.count()
        self._logins = itertools.count(1)

    def next_api(self) -> Api:
        return self.apis[next(self._turn) % len(self.apis)]

    def tries(self) -> Iterator[Api]:
        """The APIs one request tries in turn: the next one, then each following one, as a
        client retrying on another replica would (never the same dead process twice running)."""
        start = next(self._turn)
        for attempt in range(ATTEMPTS):
            yield self.apis[(start + attempt) % len(self.apis)]

    async def send(
        self, method: str, path: str, *, api: Api | None = None, **options: Any
    ) -> httpx.Response | None:
        """One request; None when the process did not answer (counted apart)."""
        target = api or self.next_api()
        try:
            response = await target.http.request(method, path, **options)
        except httpx.TimeoutException:
            self.tally.timeouts[target.name] += 1
            return None
        except httpx.TransportError:
            self.tally.connection_errors[target.name] += 1
            return None
        self.tally.requests += 1
        self.tally.answers[(method + " " + _route(path), response.status_code)] += 1
        if response.status_code >= 500:
            self.tally.server_errors.append(
                f"{target.name} {method} {path} {response.status_code} {response.text[:200]}"
            )
        return response

    async def access(self) -> None:
        await self.send("GET", f"/v1/access/{random.choice(self.known)}")

    async def register(self) -> None:
        account = self.to_register.pop() if self.to_register else random.choice(self.known)
        for api in self.tries():
            response = await self.send(
                "POST", "/v1/clients", api=api, json={"encoded_account_id": account}
            )
            if response is None or response.status_code >= 500:
                continue
            if response.status_code in (200, 201):
                self.tally.registered.add(account)
                self.known.append(account)
            else:
                self.tally.rejected[account] = response.status_code
            return
        self.tally.unanswered.append(account)

    async def provision(self) -> None:
        login = f"soak{self.run_id}n{next(self._logins):06d}"
        for api in self.tries():
            response = await self.send(
                "POST",
                "/v1/accounts",
                api=api,
                json=provision_body(login),
                headers={"Idempotency-Key": login},
            )
            if response is None or response.status_code >= 500:
                continue
            if response.status_code in (201, 202):
                self.tally.accepted[login] = response.status_code
            else:
                self.tally.rejected[login] = response.status_code
            return
        self.tally.unanswered.append(login)

    async def run(self, until: float, rate: float, concurrency: int = 64) -> None:
        """Start requests `rate` times a second until `until` (monotonic), at most
        `concurrency` in flight; a saturated service lowers the achieved rate."""
        slots = asyncio.Semaphore(concurrency)
        operations = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        tasks: set[asyncio.Task[None]] = set()

        async def one(name: str) -> None:
            try:
                await getattr(self, name)()
            finally:
                slots.release()

        next_at = time.monotonic()
        while next_at < until:
            await slots.acquire()
            task = asyncio.create_task(one(random.choices(operations, weights)[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)


class Watcher:
    """Billing decisions on other-partner clients, each watched until every API shows it."""

    def __init__(self, load: Load, clients: list[str]) -> None:
        self.load = load
        self.approved = dict.fromkeys(clients, False)
        self._next = itertools.cycle(clients)

    async def run(self, until: float, interval: float) -> None:
        while time.monotonic() + interval < until:
            await asyncio.sleep(interval)
            await self.decide(next(self._next))

    async def decide(self, client: str) -> None:
        want = not self.approved[client]
        response = await self.load.send(
            "POST" if want else "DELETE",
            f"/v1/clients/{client}/billing-approval",
            json={"note": "soak: billing decision"},
        )
        if response is None:
            return
        if response.status_code != 200:
            self.load.tally.decision_conflicts += 1
            return
        self.approved[client] = want
        self.load.tally.decisions += 1
        acknowledged = time.monotonic()
        live = [api for api in self.load.apis if api.up]
        await asyncio.gather(*(self._until_seen(api, client, want, acknowledged) for api in live))

    async def _until_seen(self, api: Api, client: str, allowed: bool, since: float) -> None:
        deadline = since + PROPAGATION_GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            response = await self.load.send("GET", f"/v1/access/{client}", api=api)
            if response is None:
                return  # that process went down: it has nothing to show
            if response.status_code == 200 and response.json()["allowed"] is allowed:
                self.load.tally.propagation_ms.append((time.monotonic() - since) * 1000)
                return
            await asyncio.sleep(PROPAGATION_POLL_SECONDS)
        self.load.tally.propagation_misses += 1
        self.load.tally.propagation_ms.append(PROPAGATION_GIVE_UP_SECONDS * 1000)


def _route(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[2] in ("access", "clients"):
        parts[3] = "{id}"
    return "/".join(parts)
