"""Soak: three API processes and two workers on one Postgres with the sandbox, under a mixed
load spread round-robin over the APIs, while one worker and one API are killed (SIGKILL) and
restarted.

Checks: no 5xx (connection errors to a killed process are counted apart); every billing
decision visible on every live API within 1 s; exactly one scheduled audit per period; no
provisioning request or registration lost or duplicated; each process's resident memory at the
end within 10 % of its memory after warm-up. The last line is
`RESULT minutes=<x> requests=<n> server_errors=<n> lost=<n> duplicates=<n>
max_propagation_ms=<x> audits_per_period=<n> rss_growth=<x>`.

    .venv/bin/python bench/soak.py [--minutes 5] [--rate 100] [--audit-period 60]

Uses DATABASE_URL or TEST_DATABASE_URL's server when set (creating and dropping its own
database there), the embedded Postgres under .data/bench-postgres otherwise. Logs of every
process go to .data/soak/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.migrate import upgrade  # noqa: E402
from app.sandbox.partners import OUR_ENCODED_PARTNER_ID  # noqa: E402
from bench import soak_checks  # noqa: E402
from bench.soak_load import Api, Load, Tally, Watcher  # noqa: E402
from bench.support import (  # noqa: E402
    bench_sandbox,
    credentials_env,
    free_port,
    fresh_database,
    postgres_server,
)

LOG_DIR = ROOT / ".data" / "soak"
STARTUP_SECONDS = 180.0
DOWN_SECONDS = 5.0
SCOPES = "access:check,clients:register,clients:read,clients:decide,accounts:provision,audits:run"


@dataclass
class Proc:
    """One OS process of the soak, restartable on the same port."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    rss: dict[str, int] = field(default_factory=dict)
    failed: str = ""

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with (LOG_DIR / f"{self.name}-{self.restarts}.log").open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        self.started_at = time.monotonic()

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self.restarts += 1

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def sample(self, label: str) -> None:
        assert self.popen is not None
        self.rss[label] = psutil.Process(self.popen.pid).memory_info().rss

    async def ready(self, path: str) -> None:
        """Wait until the process answers 200 on `path` of its port."""
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert self.popen is not None
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {LOG_DIR}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}{path}")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer {path}; see {LOG_DIR}")
                await asyncio.sleep(0.2)


def serve_sandbox(port: int) -> None:
    """The sandbox process: our partner with the bench credentials, generous CTCT limits."""
    import uvicorn

    from app.sandbox.app import create_sandbox_app

    state = bench_sandbox(rate_per_second=200, daily_quota=10_000_000)
    app = create_sandbox_app(state, control=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def process_env(database_url: str, sandbox: str, audit_period: int) -> dict[str, str]:
    """Production-like settings, except a short audit period and lease, so that a few minutes
    hold several periods and a killed worker's send is taken over within them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_DATABASE",))}
    env.update(
        {
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "5",
            "DATABASE_MAX_OVERFLOW": "5",
            "CTCT_BASE_URL": f"{sandbox}/v3",
            "CTCT_TOKEN_URL": f"{sandbox}/oauth2/token",
            "CTCT_PARTNER_ID": OUR_ENCODED_PARTNER_ID,
            "CTCT_RATE_PER_SECOND": "50",
            "CTCT_DAILY_QUOTA": "5000000",
            "PROVISION_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "PROVISION_LEASE_SECONDS": "15",
            "PROVISION_WORKER_CONCURRENCY": "4",
            "AUDIT_SCHEDULE": f"* * * * * */{audit_period}",
            "WORKER_HOST": "127.0.0.1",
            **credentials_env(),
        }
    )
    return env


def api_key(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--name", "soak", "--scopes", SCOPES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


async def _new_accounts(
    control: httpx.AsyncClient, partner: str, count: int, prefix: str
) -> list[str]:
    body = {"partner": partner, "count": count, "login_prefix": prefix}
    response = await control.post("/accounts", json=body)
    response.raise_for_status()
    ids: list[str] = response.json()["encoded_account_ids"]
    return ids


async def seed(sandbox: str, load: Load) -> list[str]:
    """Accounts in the sandbox, registered through the APIs (the steady state: the store
    knows them). Returns the other-partner clients the watcher decides on."""
    async with httpx.AsyncClient(base_url=f"{sandbox}/_sandbox", timeout=60) as control:
        ours = await _new_accounts(control, "ours", 300, "known_ours")
        theirs = await _new_accounts(control, "other", 60, "known_other")
        nobody = await _new_accounts(control, "none", 40, "known_none")
    load.to_register = []
    for batch in (ours, theirs, nobody):
        for start in range(0, len(batch), 50):
            load.to_register = batch[start : start + 50]
            await asyncio.gather(*(load.register() for _ in load.to_register))
    load.known[:] = ours + theirs + nobody
    load.to_register = []
    return theirs[:20]


async def onboard(sandbox: str, load: Load, per_second: float, until: float) -> None:
    """New accounts appear at CTCT as the load registers them (60 % ours, 25 % another
    partner's, 15 % nobody's), a few seconds ahead, as a product onboards its customers: an
    audit period finds what the period brought, not the whole run's registrations at once."""
    step = 2.0
    async with httpx.AsyncClient(base_url=f"{sandbox}/_sandbox", timeout=60) as control:
        batch = 0
        while time.monotonic() < until:
            count = max(1, round(per_second * step))
            batch += 1
            fresh = (
                await _new_accounts(control, "ours", count * 6 // 10, f"reg{batch}_ours")
                + await _new_accounts(control, "other", count * 25 // 100, f"reg{batch}_other")
                + await _new_accounts(control, "none", count * 15 // 100, f"reg{batch}_none")
            )
            random.shuffle(fresh)
            load.to_register[:0] = fresh  # register() takes from the end: oldest first
            await asyncio.sleep(step)


async def soak(args: argparse.Namespace, database_url: str) -> int:
    sandbox_port = free_port()
    sandbox = Proc("sandbox", [__file__, "--serve-sandbox", str(sandbox_port)], dict(os.environ))
    sandbox.port = sandbox_port
    sandbox.start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    await sandbox.ready("/_sandbox/")
    env = process_env(database_url, sandbox_url, args.audit_period)
    secret = api_key(env)
    apis = [Proc(f"api{n}", [], env, port=free_port()) for n in (1, 2, 3)]
    workers = [Proc(f"worker{n}", [], env, port=free_port()) for n in (1, 2)]
    for proc in apis:
        proc.args = ["-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(proc.port)]
    for proc in workers:
        proc.args = ["-m", "app.cli", "worker"]
        proc.env = {**env, "WORKER_PORT": str(proc.port)}
    everything = [sandbox, *apis, *workers]
    try:
        for proc in apis + workers:
            proc.start()
        await asyncio.gather(
            *(p.ready("/readyz") for p in apis), *(w.ready("/healthz") for w in workers)
        )
        workers_up = time.time()
        return await drive(args, env, secret, sandbox_url, apis, workers, database_url, workers_up)
    finally:
        for proc in reversed(everything):
            proc.stop()


async def drive(
    args: argparse.Namespace,
    env: dict[str, str],
    secret: str,
    sandbox_url: str,
    procs: list[Proc],
    workers: list[Proc],
    database_url: str,
    workers_up: float,
) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    clients = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{p.port}", headers=headers, timeout=10)
        for p in procs
    ]
    apis = [
        Api(p.name, f"http://127.0.0.1:{p.port}", http)
        for p, http in zip(procs, clients, strict=True)
    ]
    tally = Tally()
    run_id = uuid.uuid4().hex[:6]
    load = Load(apis, known=[], to_register=[], run_id=run_id, tally=tally)
    duration = args.minutes * 60
    watched = await seed(sandbox_url, load)
    # The load's own tally; the registrations of the seeding must still be stored at the end.
    load.tally = tally = Tally(registered=set(tally.registered))
    watcher = Watcher(load, watched)
    for api in apis:
        for client in watched:
            await load.send("GET", f"/v1/access/{client}", api=api)
    warmup = min(60.0, duration * 0.2)
    started = time.monotonic()
    until = started + duration
    # Registrations are 10 % of the load; new accounts come a little faster than they are used.
    onboarding = asyncio.create_task(onboard(sandbox_url, load, args.rate * 0.12, until))
    chaos = asyncio.create_task(
        soak_checks.chaos(procs, workers, apis, started, duration, warmup, DOWN_SECONDS)
    )
    audit = asyncio.create_task(
        soak_checks.on_demand_audit(load, started + duration * 0.45, args.audit_period)
    )
    await asyncio.gather(load.run(until, args.rate), watcher.run(until, args.decision_interval))
    load_seconds = time.monotonic() - started
    load_end = time.time()
    await chaos
    await onboarding
    print(f"on-demand audit: {await audit}", flush=True)
    for proc in procs + workers:
        proc.sample("end")
    for http in clients:
        await http.aclose()
    report = await soak_checks.verify(
        database_url, sandbox_url, tally, workers_up, load_end, args.audit_period
    )
    tail = load_seconds - duration
    print(f"load window {duration:.0f} s; its last requests finished {tail:.0f} s later")
    return soak_checks.print_report(report, tally, procs + workers, duration)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="load duration (default 5)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests started per second")
    parser.add_argument(
        "--audit-period", type=int, default=60, help="seconds between scheduled audits (60)"
    )
    parser.add_argument("--decision-interval", type=float, default=1.0)
    parser.add_argument("--serve-sandbox", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox)
        return 0
    with postgres_server() as server, fresh_database(server, "bench_soak") as database_url:
        upgrade(database_url)
        return asyncio.run(soak(args, database_url))


if __name__ == "__main__":
    sys.exit(main())
