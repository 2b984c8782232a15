"""Import benchmark: a file of N rows whose accounts are all in our partner list, against the
sandbox in its own OS process (loopback) at R calls/s.

It counts the CTCT calls the import spends (goal: ⌈N/50⌉ list calls and no probe, not N probes)
and the wall time against the rate limit's floor (⌈N/50⌉/R s). The store already knows 99% of
the accounts (approved; the steady state of a partner that imports again); 1% are new.

    .venv/bin/python bench/imports.py   # DATABASE_URL / TEST_DATABASE_URL, else embedded Postgres

Last line: RESULT n=<N> list_calls=<x> expected=<⌈N/50⌉> probe_calls=<x> time_ratio=<x>
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import create_engine, create_sessionmaker
from app.imports import runner
from app.imports import service as imports_service
from app.imports.csv_rows import RowIn
from app.migrate import PROJECT_ROOT, upgrade
from app.settings import Settings
from bench.support import free_port, fresh_database, postgres_server

N = 10_000
RATE = 10
KNOWN_SHARE = 0.99


async def _run(database_url: str, sandbox: str) -> str:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",
        database={"url": database_url, "pool_size": 5, "max_overflow": 5},
        ctct={
            "base_url": f"{sandbox}/v3",
            "token_url": f"{sandbox}/oauth2/token",
            "rate_per_second": float(RATE),
            "daily_quota": 1_000_000,
            "interactive_reserve": 0,
        },
    )
    async with httpx.AsyncClient(base_url=sandbox, timeout=120) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        (await control.put("/_sandbox/limits", json={"rate_per_second": RATE})).raise_for_status()
        seeded = await control.post("/_sandbox/accounts", json={"partner": "ours", "count": N})
        ids: list[str] = seeded.json()["encoded_account_ids"]
    engine = create_engine(database_url, pool_size=5, max_overflow=5)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO client (encoded_account_id, status, evidence_status, status_reason, "
                "verified_at, verified_via, version) SELECT id, 'approved', 'approved', 'bench', "
                "now() - interval '1 day', 'partner_list', 1 "
                "FROM unnest(CAST(:ids AS varchar[])) id"
            ),
            {"ids": ids[: int(N * KNOWN_SHARE)]},
        )
        rows = [RowIn(line, account, None, None, None) for line, account in enumerate(ids, 2)]
        job = await imports_service.create(
            session, rows, filename="bench.csv", requested_by="bench", dry_run=False, queue=False
        )
    await asyncio.sleep(1.1)  # the budget's window starts empty
    started = time.perf_counter()
    finished = await runner.run_import(sessionmaker, engine, settings, job.id)
    wall = time.perf_counter() - started
    await engine.dispose()
    assert finished is not None
    assert finished.state == "completed", finished.error
    expected = math.ceil(N / 50)
    floor = expected / RATE
    print(
        f"n={N} R={RATE}/s outcomes={finished.outcomes} list_calls={finished.list_calls} "
        f"probe_calls={finished.probe_calls} token_calls={finished.token_calls} "
        f"wall={wall:.2f}s floor={floor:.2f}s",
        flush=True,
    )
    return (
        f"RESULT n={N} list_calls={finished.list_calls} expected={expected} "
        f"probe_calls={finished.probe_calls} time_ratio={wall / floor:.3f}"
    )


def main() -> int:
    with postgres_server() as server_url, fresh_database(server_url, "bench_imports") as url:
        upgrade(url)
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

            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
            print(asyncio.run(_run(url, base)))
        finally:
            sandbox.terminate()
            sandbox.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
