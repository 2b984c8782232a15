"""Audit benchmark: N clients in the sandbox (its own OS process, on loopback) at R calls/s.

For each N it prints CTCT calls per client, wall time divided by the floor the rate limit sets
(⌈N/50⌉/R s; goal ≤ 1.05 at N = 100,000) and the audit's peak memory (RSS growth of this
process during the run). The store already knows 99% of the accounts (the steady state); 1%
are new and added.

    .venv/bin/python bench/audit.py [--n 100000]  # DATABASE_URL / TEST_DATABASE_URL, else
                                                  # the embedded Postgres

Last line: RESULT n=<largest N> calls_per_client=<x> time_ratio=<x> peak_mb=<x>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.audit import runner
from app.audit.models import AuditTrigger
from app.ctct.client import build_ctct_client
from app.db import create_engine, create_sessionmaker
from app.migrate import PROJECT_ROOT, upgrade
from app.settings import Settings
from bench.support import free_port, fresh_database, postgres_server

# (N, R): the bench raises R for large N so the run fits in minutes; the ratio uses the same R.
CASES = [(1_000, 4), (10_000, 10), (100_000, 15)]
KNOWN_SHARE = 0.99


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def _case(n: int, rate: int, database_url: str, sandbox: str) -> tuple[float, float, float]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",
        database={"url": database_url, "pool_size": 5, "max_overflow": 5},
        ctct={
            "base_url": f"{sandbox}/v3",
            "token_url": f"{sandbox}/oauth2/token",
            "rate_per_second": float(rate),
            "daily_quota": 1_000_000,
            "interactive_reserve": 0,
        },
        audit={"max_demotion_ratio": 0.1},
    )
    async with httpx.AsyncClient(base_url=sandbox, timeout=120) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        (await control.put("/_sandbox/limits", json={"rate_per_second": rate})).raise_for_status()
        seeded = await control.post("/_sandbox/accounts", json={"partner": "ours", "count": n})
        ids: list[str] = seeded.json()["encoded_account_ids"]
    engine = create_engine(database_url, pool_size=5, max_overflow=5)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE audit_run, client, status_event CASCADE"))
        await session.execute(text("DELETE FROM ctct_budget"))
        await session.execute(
            text(
                "INSERT INTO client (encoded_account_id, status, evidence_status, status_reason, "
                "verified_at, verified_via, version) SELECT id, 'approved', 'approved', 'bench', "
                "now() - interval '1 day', 'partner_list', 1 "
                "FROM unnest(CAST(:ids AS varchar[])) id"
            ),
            {"ids": ids[: int(n * KNOWN_SHARE)]},
        )
    # Let the budget's sliding window start empty, as it would after a quiet period.
    await asyncio.sleep(1.1)
    baseline = _rss_kb("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    async with build_ctct_client(settings.ctct, engine=engine) as ctct:
        run = await runner.run_once(sessionmaker, settings, ctct, trigger=AuditTrigger.CLI)
    wall = time.perf_counter() - started
    peak_mb = max(0, _rss_kb("VmHWM") - baseline) / 1024
    await engine.dispose()
    assert run is not None
    assert run.state == "completed", (run.state, run.error)
    assert run.clients_seen == n, run.clients_seen
    floor = math.ceil(n / 50) / rate
    calls_per_client = run.ctct_calls / n
    ratio = wall / floor
    print(
        f"n={n:>7} R={rate:>3}/s pages={run.pages_read:>5} ctct_calls={run.ctct_calls:>5} "
        f"calls_per_client={calls_per_client:.4f} added={run.clients_added:>5} "
        f"wall={wall:7.2f}s floor={floor:7.2f}s time_ratio={ratio:.3f} peak_mb={peak_mb:.1f}",
        flush=True,
    )
    return calls_per_client, ratio, peak_mb


async def _main(database_url: str, sandbox: str, only: int | None) -> str:
    result = ""
    for n, rate in CASES:
        if only is not None and n != only:
            continue
        calls, ratio, peak = await _case(n, rate, database_url, sandbox)
        result = (
            f"RESULT n={n} calls_per_client={calls:.4f} time_ratio={ratio:.3f} peak_mb={peak:.1f}"
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, choices=[n for n, _ in CASES], help="one case only")
    only = parser.parse_args().n
    with postgres_server() as server_url, fresh_database(server_url, "bench_audit") as database_url:
        upgrade(database_url)
        port = free_port()
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "app.sandbox", "--port", str(port)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"{base}/_sandbox/", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            import structlog

            structlog.configure(
                wrapper_class=structlog.make_filtering_bound_logger(40)  # errors only
            )
            print(asyncio.run(_main(database_url, base, only)))
        finally:
            sandbox.terminate()
            sandbox.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
