"""Benchmark: the access check against /healthz on one API process with 10,000 clients.

Starts (or uses) Postgres, migrates a fresh database, seeds 10,000 approved clients, serves the
CTCT sandbox on loopback, starts one API process (`python -m app.cli serve`: uvicorn with uvloop
and httptools, JSON logs at WARNING), and drives it from this process with a small keep-alive
HTTP/1.1 load generator at fixed concurrency: `GET /v1/access/{id}` over random known ids and
`GET /healthz`, in alternating timed phases. Prints both request rates, their ratio, latency
percentiles and the number of CTCT calls the sandbox saw. The load generator shares the
machine's cores with the API process, so the absolute rates are those of a shared box.

    .venv/bin/python bench/access.py [--seconds 6] [--concurrency 32] [--clients 10000]

Uses DATABASE_URL or TEST_DATABASE_URL's server when set (creating and dropping its own
database there), the embedded Postgres under .data/bench-postgres otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.auth.scopes import Scope  # noqa: E402
from app.auth.service import hash_secret, new_secret  # noqa: E402
from app.db import libpq_url  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.sandbox.server import running_sandbox  # noqa: E402
from bench.support import (  # noqa: E402
    bench_sandbox,
    credentials_env,
    free_port,
    fresh_database,
    postgres_server,
)

ID_PREFIX = "bench"


def seed(database_url: str, clients: int) -> tuple[list[str], str]:
    """Insert `clients` approved, freshly verified clients and an access:check key."""
    secret = new_secret()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO client (encoded_account_id, status, status_reason, evidence_status,
                                verified_at, verified_via, version)
            SELECT %s || lpad(n::text, 6, '0'), 'approved', 'bench_seed', 'approved',
                   now(), 'partner_list', 1
            FROM generate_series(1, %s) AS n
            """,
            (ID_PREFIX, clients),
        )
        conn.execute(
            "INSERT INTO api_key (name, secret_hash, scopes) VALUES (%s, %s, %s)",
            ("bench", hash_secret(secret), [Scope.ACCESS_CHECK.value]),
        )
    ids = [f"{ID_PREFIX}{n:06d}" for n in range(1, clients + 1)]
    return ids, secret


@contextmanager
def api_process(database_url: str, sandbox_url: str, port: int) -> Iterator[None]:
    """One `partnergate serve` process with production-like settings."""
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "CTCT_BASE_URL": f"{sandbox_url}/v3",
        "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
        "PROVISION_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        **credentials_env(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API process did not become ready")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Phase:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: Phase) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.latencies.extend(other.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _one_connection(
    port: int,
    requests: list[bytes],
    deadline: float,
    budget: list[int],
    phase: Phase,
    record: bool,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    choose = random.Random().choice
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            request = choose(requests)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            elapsed = time.perf_counter() - started
            phase.requests += 1
            if head[9:12] != b"200":
                phase.errors += 1
            if record:
                phase.latencies.append(elapsed)
    finally:
        writer.close()


async def drive(
    port: int,
    requests: list[bytes],
    *,
    seconds: float,
    max_requests: int,
    concurrency: int,
    record: bool = True,
) -> Phase:
    """`concurrency` keep-alive connections sending `requests` for `seconds` (or the count)."""
    phase = Phase()
    budget = [max_requests]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _one_connection(port, requests, deadline, budget, phase, record)
            for _ in range(concurrency)
        )
    )
    phase.elapsed = time.perf_counter() - started
    return phase


def _get(path: str, secret: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


async def load(
    port: int, ids: list[str], secret: str, *, seconds: float, concurrency: int, rounds: int
) -> tuple[Phase, Phase]:
    """Warm up, then alternate healthz and access phases; returns their totals."""
    access = [_get(f"/v1/access/{account_id}", secret) for account_id in ids]
    healthz = [_get("/healthz")]
    # Warm-up: every id once through the batch endpoint (one query per 1,000 ids fills the
    # decision cache, as steady traffic would), then both paths briefly.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for start in range(0, len(ids), 1000):
            response = await http.post(
                "/v1/access:batch",
                json={"account_ids": ids[start : start + 1000]},
                headers={"Authorization": f"Bearer {secret}"},
            )
            response.raise_for_status()
    await drive(port, access, seconds=1, max_requests=100_000, concurrency=concurrency)
    await drive(port, healthz, seconds=1, max_requests=100_000, concurrency=concurrency)
    totals = (Phase(), Phase())
    cap = 200_000
    for _ in range(rounds):
        totals[0].add(
            await drive(port, healthz, seconds=seconds, max_requests=cap, concurrency=concurrency)
        )
        totals[1].add(
            await drive(port, access, seconds=seconds, max_requests=cap, concurrency=concurrency)
        )
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="healthz+access phase pairs")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=10_000)
    args = parser.parse_args()

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the generator works on the stock loop too, a little slower
        pass

    sandbox = bench_sandbox()
    with (
        postgres_server() as server_url,
        fresh_database(server_url, "bench_access") as database_url,
        running_sandbox(sandbox) as sandbox_url,
    ):
        upgrade(database_url)
        ids, secret = seed(database_url, args.clients)
        port = free_port()
        print(f"seeded {len(ids)} clients; API on 127.0.0.1:{port}", flush=True)
        with api_process(database_url, sandbox_url, port):
            healthz, access = asyncio.run(
                load(
                    port,
                    ids,
                    secret,
                    seconds=args.seconds,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                )
            )
        ctct_calls = len(sandbox.calls.calls())

    ratio = access.rps / healthz.rps if healthz.rps else 0.0
    for name, phase in (("healthz", healthz), ("access", access)):
        print(
            f"{name:8} {phase.requests:7d} requests in {phase.elapsed:5.1f}s "
            f"= {phase.rps:8.0f}/s  errors={phase.errors}  "
            f"p50={phase.percentile(0.5):.2f}ms p99={phase.percentile(0.99):.2f}ms "
            f"mean={statistics.fmean(phase.latencies) * 1000:.2f}ms"
        )
    print(f"concurrency={args.concurrency} ctct_calls={ctct_calls}")
    print(
        f"RESULT access_rps={access.rps:.0f} healthz_rps={healthz.rps:.0f} ratio={ratio:.3f} "
        f"p50_ms={access.percentile(0.5):.2f} p99_ms={access.percentile(0.99):.2f} "
        f"ctct_calls={ctct_calls}"
    )
    return 1 if access.errors or healthz.errors else 0


if __name__ == "__main__":
    sys.exit(main())
