"""Benchmark: provisioning and background work through a bad day at CTCT (issue 11).

Serves the CTCT sandbox on loopback (CTCT's 4 calls/s and daily quota, a partner list of
`--accounts` accounts), starts two API processes and two worker processes on one Postgres, and
drives them through scenarios that each last a bounded time:

1. a `--window` s 503 window on creates while `--creates` creates arrive; the first `--lost`
   sends create their account and lose the answer; halfway, the partner token is revoked;
2. `--latency` s of latency on list and create (beyond CTCT_TIMEOUT_SECONDS) for
   `--latency-window` s while `--latency-creates` creates arrive;
3. a random worker killed with SIGKILL every `--kill-every` s and restarted, for `--kill-phase`
   s while `--kill-creates` creates arrive;
4. once the work of 1-3 has settled, the daily quota reaching zero: today's count in our shared
   budget (and the sandbox's own quota with it) is moved to where only the interactive reserve
   is left, an audit is asked for, and `--quota-creates` creates arrive during a 503 window:
   their first attempts spend the reserve, their retries and the read they need must wait for
   00:00 UTC, and they stay pending saying so.

Access probes (`GET /v1/access/{id}?consistency=fresh`, each a CTCT call) run throughout. Then
it waits (at most `--settle` s) for the work to come to rest, and checks, from the sandbox's
own records and our database:

- `duplicates`: no login name was created twice (201s per login, accounts per login);
- `overlapping_sends`: no two creates of one login overlapped at the sandbox, each lasting from
  its arrival until it was answered or its client went away;
- `lost`: every request is succeeded with the sandbox's account for its login, or failed /
  needs_attention while the sandbox has no such account, or pending with a live job and a
  reason (e.g. "resets at 00:00 UTC"); every create got an answer that names its request;
- `reconcile_list_calls`: list calls the sandbox served, minus the audit's own count, against
  `reconcile_bound` = 2 x ceil(N/50) for each episode of unknown outcomes (scenarios 1-3);
- `probes_refused`: probes answered without CTCT (`unverified`, `ctct_unavailable`) or not 200.

The last line: `RESULT requests=<n> lost=<n> duplicates=<n> overlapping_sends=<n>
reconcile_list_calls=<n> reconcile_bound=<n> probes_refused=<n>`.

    .venv/bin/python bench/chaos.py           # the issue's sizes (20,000 accounts, 200 creates)
    .venv/bin/python bench/chaos.py --quick   # 2,000 accounts, shorter windows (a loaded box)

Uses DATABASE_URL or TEST_DATABASE_URL's server when set (creating and dropping its own
database there), the embedded Postgres under .data/bench-postgres otherwise. Process logs go to
.data/chaos/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth.scopes import Scope  # noqa: E402
from app.auth.service import hash_secret, new_secret  # noqa: E402
from app.ctct.budget_terms import key_fingerprint  # noqa: E402
from app.db import libpq_url  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.sandbox.calls import CallRecord  # noqa: E402
from app.sandbox.server import running_sandbox  # noqa: E402
from app.sandbox.state import SandboxState  # noqa: E402
from bench.support import (  # noqa: E402
    BENCH_PARTNER,
    bench_sandbox,
    credentials_env,
    free_port,
    fresh_database,
    postgres_server,
)

RATE = 4
DAILY_QUOTA = 10_000
INTERACTIVE_RESERVE = 1_000
RETRY_RESERVE = 1_000
ACCOUNTS_PATH = "/v3/partner/accounts"
REFUSED_REASONS = {"unverified", "ctct_unavailable"}
LOG_DIR = ROOT / ".data" / "chaos"


@dataclass
class Config:
    accounts: int = 20_000
    creates: int = 200
    window: float = 60.0
    lost: int = 20
    latency: float = 40.0
    latency_window: float = 45.0
    latency_creates: int = 20
    kill_every: float = 10.0
    kill_phase: float = 60.0
    kill_creates: int = 40
    quota_phase: float = 30.0
    quota_creates: int = 10
    settle: float = 900.0
    quiet: float = 45.0
    probe_every: float = 1.0
    # ACCESS_PROBE_TIMEOUT: how long a fresh access check waits for CTCT (production: 2 s)
    probe_timeout: float = 2.0
    ctct_timeout: float = 10.0
    lease: float = 30.0
    reconcile_interval: float = 30.0


QUICK = {
    "accounts": 2_000,
    "creates": 60,
    "window": 20.0,
    "lost": 8,
    "latency": 12.0,
    "latency_window": 15.0,
    "latency_creates": 8,
    "kill_phase": 30.0,
    "kill_creates": 12,
    "quota_phase": 15.0,
    "quota_creates": 5,
    "settle": 300.0,
    "quiet": 30.0,
    "ctct_timeout": 4.0,
    "lease": 15.0,
    "reconcile_interval": 10.0,
}


@dataclass
class Probes:
    answered: int = 0
    refused: list[tuple[float, str]] = field(default_factory=list)
    slowest: float = 0.0


@dataclass
class Run:
    """What the driver did and saw."""

    started: float = field(default_factory=time.monotonic)
    logins: dict[str, str] = field(default_factory=dict)  # login -> scenario
    answers: Counter[str] = field(default_factory=Counter)
    unanswered: list[str] = field(default_factory=list)
    probes: Probes = field(default_factory=Probes)
    kills: int = 0

    def mark(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {what}", flush=True)


# Processes --------------------------------------------------------------------------------


def process_env(database_url: str, sandbox_url: str, config: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": database_url,
            "CTCT_BASE_URL": f"{sandbox_url}/v3",
            "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
            "CTCT_RATE_PER_SECOND": str(RATE),
            "CTCT_DAILY_QUOTA": str(DAILY_QUOTA),
            "CTCT_INTERACTIVE_RESERVE": str(INTERACTIVE_RESERVE),
            "CTCT_RETRY_RESERVE": str(RETRY_RESERVE),
            "CTCT_TIMEOUT_SECONDS": str(config.ctct_timeout),
            "PROVISION_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "PROVISION_RETRY_BASE_SECONDS": "1",
            "PROVISION_RETRY_CAP_SECONDS": "20",
            "PROVISION_LEASE_SECONDS": str(config.lease),
            "PROVISION_WAIT_SECONDS": "5",
            "PROVISION_WORKER_CONCURRENCY": "8",
            "PROVISION_WORKER_POLL_SECONDS": "0.5",
            "PROVISION_RECONCILE_INTERVAL_SECONDS": str(config.reconcile_interval),
            "AUDIT_SCHEDULE": "0 0 1 1 *",
            "ACCESS_PROBE_TIMEOUT": str(config.probe_timeout),
            **credentials_env(),
        }
    )
    return env


class Cluster:
    """Two API processes and two workers; workers can be killed and replaced."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.apis: list[tuple[subprocess.Popen[bytes], str]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self._spawned = 0
        LOG_DIR.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self._spawned += 1
        log = (LOG_DIR / f"{name}-{self._spawned}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        for _ in range(2):
            port = free_port()
            process = self._spawn("api", ["serve", "--host", "127.0.0.1", "--port", str(port)])
            self.apis.append((process, f"http://127.0.0.1:{port}"))
        self.workers = [self._spawn("worker", ["worker"]) for _ in range(2)]
        deadline = time.monotonic() + 120
        for process, url in self.apis:
            while True:
                if process.poll() is not None:
                    raise RuntimeError("an API process exited during startup (see .data/chaos)")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not become ready within 120 s")
                time.sleep(0.3)

    def kill_a_worker(self) -> None:
        """SIGKILL one worker at random (no cleanup at all) and start another."""
        victim = random.choice(self.workers)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        self.workers.remove(victim)
        self.workers.append(self._spawn("worker", ["worker"]))

    def stop(self) -> None:
        everyone = [process for process, _ in self.apis] + self.workers
        for process in everyone:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in everyone:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Driving ------------------------------------------------------------------------------------


def api_key(database_url: str) -> str:
    secret = new_secret()
    scopes = [Scope.ACCOUNTS_PROVISION.value, Scope.ACCESS_CHECK.value, Scope.AUDITS_RUN.value]
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_key (name, secret_hash, scopes) VALUES (%s, %s, %s)",
            ("chaos", hash_secret(secret), scopes),
        )
    return secret


def create_body(login: str) -> dict[str, object]:
    return {
        "contact_email": f"{login}@example.com",
        "country_code": "US",
        "state_code": "MA",
        "login_name": login,
        "password": "Chaos-secret-9471",
        "organization_name": "Chaos Monkeys",
    }


async def post_creates(
    http: list[httpx.AsyncClient], run: Run, scenario: str, count: int, over: float
) -> None:
    """`count` creates at random moments within `over` seconds, spread over both APIs."""

    async def one(index: int) -> None:
        await asyncio.sleep(random.uniform(0, over))
        login = f"chaos_{scenario}_{index}_{uuid.uuid4().hex[:6]}"
        run.logins[login] = scenario
        client = http[index % len(http)]
        try:
            reply = await client.post(
                "/v1/accounts", json=create_body(login), headers={"Idempotency-Key": login}
            )
        except httpx.HTTPError as exc:
            run.answers[type(exc).__name__] += 1
            run.unanswered.append(login)
            return
        run.answers[str(reply.status_code)] += 1
        if reply.status_code >= 500:
            run.unanswered.append(login)

    await asyncio.gather(*(one(index) for index in range(count)))


async def probe_forever(
    http: list[httpx.AsyncClient], accounts: list[str], run: Run, every: float
) -> None:
    """Access checks that ask CTCT (`consistency=fresh`), alternating between the APIs."""
    turn = 0
    while True:
        account = random.choice(accounts)
        client = http[turn % len(http)]
        turn += 1
        started = time.monotonic()
        try:
            reply = await client.get(f"/v1/access/{account}", params={"consistency": "fresh"})
            reason = reply.json().get("reason") if reply.status_code == 200 else None
            refused = reply.status_code != 200 or reason in REFUSED_REASONS
            what = f"{reply.status_code} {reason}"
        except httpx.HTTPError as exc:
            refused, what = True, type(exc).__name__
        elapsed = time.monotonic() - started
        run.probes.slowest = max(run.probes.slowest, elapsed)
        if refused:
            run.probes.refused.append((time.monotonic() - run.started, what))
        else:
            run.probes.answered += 1
        await asyncio.sleep(every)


def spend_today_to_the_reserve(database_url: str, sandbox: SandboxState, left: int) -> None:
    """Today's count in our shared budget moves to where `left` calls remain outside the
    interactive reserve; the sandbox's own quota is set to leave exactly as many as ours."""
    fingerprint = key_fingerprint(BENCH_PARTNER.api_key)  # the processes' CTCT_API_KEY
    target = DAILY_QUOTA - INTERACTIVE_RESERVE - left
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE ctct_budget SET quota_day = (now() AT TIME ZONE 'UTC')::date, "
            "quota_used = greatest(quota_used, %s) WHERE key_fingerprint = %s",
            (target, fingerprint),
        )
        row = conn.execute(
            "SELECT quota_used FROM ctct_budget WHERE key_fingerprint = %s", (fingerprint,)
        ).fetchone()
    ours_left = DAILY_QUOTA - (row[0] if row else target)
    used = sandbox.limiter.used_today(BENCH_PARTNER.api_key, sandbox.now())
    sandbox.set_limits(daily_quota=used + ours_left)


async def drive(config: Config, cluster: Cluster, sandbox: SandboxState, database_url: str) -> Run:
    run = Run()
    secret = api_key(database_url)
    listed = [account.encoded_account_id for account in sandbox.list_accounts("ours")]
    probe_ids = random.sample(listed, min(200, len(listed)))
    clients = [
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=120)
        for _, url in cluster.apis
    ]
    prober = asyncio.create_task(probe_forever(clients, probe_ids, run, config.probe_every))
    try:
        run.mark(f"1. 503 window of {config.window:g}s on creates, {config.lost} lost answers")
        sandbox.add_fault("lost_response", "create", count=config.lost)
        sandbox.add_fault("unavailable", "create", seconds=config.window)

        async def revoke_halfway() -> None:
            await asyncio.sleep(config.window / 2)
            sandbox.invalidate_partner_tokens()
            run.mark("   the partner token is revoked")

        await asyncio.gather(
            post_creates(clients, run, "window", config.creates, config.window), revoke_halfway()
        )

        run.mark(
            f"2. {config.latency:g}s latency on list and create for {config.latency_window:g}s"
        )
        for operation in ("list", "create"):
            sandbox.add_fault(
                "latency", operation, delay_seconds=config.latency, seconds=config.latency_window
            )
        await post_creates(clients, run, "latency", config.latency_creates, config.latency_window)

        run.mark(f"3. a worker killed every {config.kill_every:g}s for {config.kill_phase:g}s")

        async def kill_loop() -> None:
            ends = time.monotonic() + config.kill_phase
            while time.monotonic() + config.kill_every <= ends:
                await asyncio.sleep(config.kill_every)
                cluster.kill_a_worker()
                run.kills += 1

        await asyncio.gather(
            post_creates(clients, run, "kills", config.kill_creates, config.kill_phase),
            kill_loop(),
        )

        run.mark(f"   settling before the quota (at most {config.settle:g}s)")
        await settle(database_url, sandbox, config)

        run.mark("4. today's quota reaches zero but for the interactive reserve, in a 503 window")
        spend_today_to_the_reserve(database_url, sandbox, left=0)
        sandbox.add_fault("unavailable", "create", seconds=config.quota_phase)
        audit = await clients[0].post("/v1/audits")
        run.mark(f"   an audit is asked for: {audit.status_code}")
        await post_creates(clients, run, "quota", config.quota_creates, config.quota_phase)

        run.mark(f"settling (at most {config.settle:g}s)")
        await settle(database_url, sandbox, config)
        run.mark("settled")
    finally:
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
        for client in clients:
            await client.aclose()
    return run


async def settle(database_url: str, sandbox: SandboxState, config: Config) -> None:
    """Until every request has ended, or nothing has moved for `quiet` s, or `settle` s."""
    deadline = time.monotonic() + config.settle
    last: tuple[int, int] = (-1, -1)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        states = request_states(database_url)
        moving = (
            sum(states.values()) - states["pending"] - states["in_flight"],
            # creates and list pages (the probes' plan calls go on throughout)
            sum(1 for call in sandbox.calls.calls(ACCOUNTS_PATH) if call.path == ACCOUNTS_PATH),
        )
        if states["pending"] + states["in_flight"] == 0:
            return
        if moving != last:
            last, still_since = moving, time.monotonic()
        elif time.monotonic() - still_since >= config.quiet:
            return


# Checking -----------------------------------------------------------------------------------


def request_states(database_url: str) -> Counter[str]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM provisioning_request GROUP BY state")
        return Counter({state: count for state, count in rows.fetchall()})


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def lost_requests(database_url: str, sandbox: SandboxState, run: Run) -> list[str]:
    accounts = {account.login_name.lower(): account for account in sandbox.list_accounts("ours")}
    live_jobs = {
        row[0]
        for row in rows(
            database_url,
            "SELECT queueing_lock FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
        )
    }
    found = rows(
        database_url,
        "SELECT id, login_name, state, encoded_account_id, last_error, lease_expires_at > now() "
        "FROM provisioning_request",
    )
    lost = list(run.unanswered)
    seen = set()
    for request_id, login, state, account_id, last_error, leased in found:
        seen.add(login)
        account = accounts.get(login.lower())
        if state == "succeeded":
            ok = account is not None and account.encoded_account_id == account_id
        elif state in ("failed", "needs_attention"):
            ok = account is None
        elif state == "in_flight":
            ok = bool(leased)
        else:
            ok = f"provisioning-{request_id}" in live_jobs and bool(last_error)
        if not ok:
            lost.append(f"{login} ({state})")
    lost += [f"{login} (no request)" for login in run.logins if login not in seen]
    return sorted(set(lost))


def duplicates(sandbox: SandboxState) -> int:
    created = Counter(
        (call.login_name or "").lower()
        for call in sandbox.calls.calls(ACCOUNTS_PATH, "POST")
        if call.status == 201
    )
    accounts = Counter(account.login_name.lower() for account in sandbox.list_accounts())
    return sum(n - 1 for n in created.values() if n > 1) + sum(
        n - 1 for n in accounts.values() if n > 1
    )


def overlapping_sends(sandbox: SandboxState) -> list[str]:
    """Creates of one login whose [arrival, answer or departure] intervals overlap."""
    by_login: dict[str, list[CallRecord]] = defaultdict(list)
    for call in sandbox.calls.calls(ACCOUNTS_PATH, "POST"):
        if call.login_name and call.arrived_at is not None:
            by_login[call.login_name.lower()].append(call)
    overlaps = []
    for login, calls in by_login.items():
        calls.sort(key=lambda call: call.arrived_at or call.at)
        for earlier, later in itertools.pairwise(calls):
            ended = earlier.left_at or earlier.at
            assert later.arrived_at is not None
            if later.arrived_at < ended:
                overlaps.append(f"{login}: {earlier.arrived_at}..{ended} and {later.arrived_at}")
    return overlaps


def report(config: Config, sandbox: SandboxState, database_url: str, run: Run) -> int:
    states = request_states(database_url)
    lost = lost_requests(database_url, sandbox, run)
    dupes = duplicates(sandbox)
    overlaps = overlapping_sends(sandbox)
    list_calls = sum(
        1 for call in sandbox.calls.calls(ACCOUNTS_PATH, "GET") if call.path == ACCOUNTS_PATH
    )
    audit_calls = sum(row[0] for row in rows(database_url, "SELECT list_calls FROM audit_run"))
    reads = rows(
        database_url,
        "SELECT state, pages_read, list_calls, requests_answered, failures FROM partner_list_read "
        "ORDER BY id",
    )
    read_calls = sum(row[2] for row in reads)
    reconcile_calls = list_calls - audit_calls
    listed = len(sandbox.list_accounts("ours"))
    episodes = 3
    bound = 2 * math.ceil(listed / 50) * episodes
    creates = sandbox.calls.calls(ACCOUNTS_PATH, "POST")
    budget = rows(database_url, "SELECT quota_used FROM ctct_budget")
    parked = rows(
        database_url,
        "SELECT count(*) FROM provisioning_request WHERE state = 'pending' "
        "AND (last_error LIKE '%resets at%' OR unknown_since IS NOT NULL)",
    )[0][0]
    print(f"scenario sizes:          {config}")
    elapsed = time.monotonic() - run.started
    print(f"run time:                {elapsed:.0f} s, workers killed {run.kills}")
    print(f"requests:                {len(run.logins)}; first answers {dict(run.answers)}")
    print(
        f"final states:            {dict(states)} ({parked} pending for today's budget or a read)"
    )
    print(f"creates at the sandbox:  {len(creates)} ({dict(Counter(c.status for c in creates))})")
    print(f"accounts in our list:    {listed}")
    print(f"partner-list reads:      {len(reads)} {reads}")
    print(f"list calls:              {list_calls} served; audit {audit_calls}; reads {read_calls}")
    print(f"budget used today:       {budget}")
    refused = run.probes.refused
    print(
        f"probes:                  {run.probes.answered} answered, {len(refused)} refused "
        f"{refused[:5]}, slowest {run.probes.slowest:.2f} s"
    )
    for line in lost[:20]:
        print(f"  lost: {line}")
    for line in overlaps[:20]:
        print(f"  overlap: {line}")
    print(
        f"RESULT requests={len(run.logins)} lost={len(lost)} duplicates={dupes} "
        f"overlapping_sends={len(overlaps)} reconcile_list_calls={reconcile_calls} "
        f"reconcile_bound={bound} probes_refused={len(run.probes.refused)}"
    )
    good = not lost and not dupes and not overlaps and not run.probes.refused
    return 0 if good and reconcile_calls <= bound else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes for a loaded box")
    defaults = Config()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args()
    values = dict(vars(defaults))
    if args.quick:
        values.update(QUICK)
    values.update({name: getattr(args, name) for name in values if getattr(args, name) is not None})
    config = Config(**values)
    sandbox = bench_sandbox(rate_per_second=RATE, daily_quota=DAILY_QUOTA)
    sandbox.seed_accounts(config.accounts, partner="ours", login_prefix="listed")
    print(f"chaos at {datetime.now(UTC).isoformat(timespec='seconds')}: {config}", flush=True)
    with postgres_server() as server, fresh_database(server, "bench_chaos") as database_url:
        upgrade(database_url)
        with running_sandbox(sandbox) as sandbox_url:
            cluster = Cluster(process_env(database_url, sandbox_url, config))
            try:
                cluster.start()
                run = asyncio.run(drive(config, cluster, sandbox, database_url))
            finally:
                cluster.stop()
        return report(config, sandbox, database_url, run)


if __name__ == "__main__":
    sys.exit(main())
