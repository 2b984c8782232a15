"""Benchmark: the access check beside a bare FastAPI route and a bare Starlette route, one run.

Starts (or uses) Postgres, migrates a fresh database, seeds 10,000 approved clients, serves the
CTCT sandbox on loopback and starts three servers, all uvicorn with uvloop and httptools in this
virtualenv: one `partnergate serve` process (LOG_LEVEL=WARNING), bench/bare_starlette.py and
bench/bare_fastapi.py (a route returning the same decision's JSON). Then it measures, one phase
each at fixed concurrency: the bare Starlette route, the bare FastAPI route, `GET /healthz`,
`GET /v1/access/{id}` over random known ids, and `POST /v1/access:batch` of 100 random known
ids. Prints each phase, then a last line

    RESULT access_rps=<x> fastapi_rps=<x> starlette_rps=<x> healthz_rps=<x> ratio_fastapi=<x>
    ratio_starlette=<x> p50_ms=<x> p99_ms=<x> fastapi_p99_ms=<x> batch_ids_per_s=<x> ctct_calls=<n>

(on one line). The load comes from `wrk -t1 -c<concurrency> -d<seconds>s --latency` when wrk
is on PATH (Debian/Ubuntu: `sudo apt-get install wrk`; macOS: `brew install wrk`): it drives a
loopback server with a fraction of the CPU a Python generator needs, which on a 2-core machine
decides what is measured. Without wrk the bench falls back to its own Python keep-alive
generator (and says so); it shares the cores with the servers, so every rate reads lower.

    .venv/bin/python bench/access.py [--seconds 10] [--concurrency 32] [--clients 10000]
                                     [--python-generator]

Uses DATABASE_URL or TEST_DATABASE_URL's server when set (creating and dropping its own
database there), the embedded Postgres under .data/bench-postgres otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
from app.sandbox.state import SandboxState  # noqa: E402
from bench.support import free_port, fresh_database, postgres_server  # noqa: E402

ID_PREFIX = "bench"
BATCH_SIZE = 100
STARTUP_SECONDS = 120  # a loaded 2-core machine can take 20 s just to import the app
WARMUP_SECONDS = 2


@dataclass
class Measured:
    """One phase's figures."""

    name: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")

    def line(self) -> str:
        return (
            f"{self.name:10} {self.requests:8d} requests in {self.seconds:5.1f}s "
            f"= {self.rps:8.0f}/s  p50={self.p50_ms:6.2f}ms p99={self.p99_ms:7.2f}ms  "
            f"errors={self.errors}"
        )


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
def server(command: list[str], ready_url: str, env: dict[str, str]) -> Iterator[None]:
    """A server process from `command`, yielded once `ready_url` answers 200."""
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command[1:3])} did not become ready")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_env(database_url: str, sandbox_url: str) -> dict[str, str]:
    """Production-like settings for `partnergate serve`."""
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "CTCT_BASE_URL": f"{sandbox_url}/v3",
        "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
        "PROVISION_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }


# -- wrk ------------------------------------------------------------------------------------

ACCESS_LUA = """
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", string.format("/v1/access/%(prefix)s%%06d", math.random(1, %(n)d)))
end
"""

BATCH_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(%(seed)d)
local bodies = {}
for b = 1, 64 do
  local ids = {}
  for i = 1, %(size)d do
    ids[i] = string.format('"%(prefix)s%%06d"', math.random(1, %(n)d))
  end
  bodies[b] = '{"account_ids":[' .. table.concat(ids, ",") .. ']}'
end
request = function()
  return wrk.format(nil, "/v1/access:batch", nil, bodies[math.random(1, #bodies)])
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(output: str, percent: str) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    return float(found.group(1)) * _UNITS_MS[found.group(2)] if found else float("nan")


def run_wrk(
    name: str,
    url: str,
    *,
    seconds: float,
    concurrency: int,
    headers: list[str],
    script: Path | None = None,
) -> Measured:
    """One wrk phase against `url`, parsed."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read \d+, write \d+, timeout (\d+)", output)
    if requests is None or rps is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    return Measured(
        name,
        requests=int(requests.group(1)),
        errors=(int(non_2xx.group(1)) if non_2xx else 0)
        + (int(sockets.group(1)) + int(sockets.group(2)) if sockets else 0),
        seconds=float(requests.group(2)) * _UNITS_MS[requests.group(3)] / 1000,
        rps=float(rps.group(1)),
        p50_ms=_wrk_ms(output, "50"),
        p99_ms=_wrk_ms(output, "99"),
    )


# -- the Python generator (without wrk) ---------------------------------------------------


@dataclass
class _Tally:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


async def _one_connection(
    port: int, requests: list[bytes], deadline: float, tally: _Tally, rng: random.Random
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(rng.choice(requests))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - started)
            tally.requests += 1
            if head[9:12] != b"200":
                tally.errors += 1
    finally:
        writer.close()


def run_python(
    name: str, port: int, requests: list[bytes], *, seconds: float, concurrency: int
) -> Measured:
    """One phase from this process's keep-alive generator."""

    async def drive() -> tuple[_Tally, float]:
        tally = _Tally()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                _one_connection(port, requests, deadline, tally, random.Random(n))
                for n in range(concurrency)
            )
        )
        return tally, time.perf_counter() - started

    tally, elapsed = asyncio.run(drive())
    ordered = sorted(tally.latencies)

    def pct(q: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return Measured(
        name,
        requests=tally.requests,
        errors=tally.errors,
        seconds=elapsed,
        rps=tally.requests / elapsed if elapsed else 0.0,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
    )


def _get(path: str, secret: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def _post(path: str, body: bytes, secret: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    starlette: int
    fastapi: int
    api: int
    secret: str
    ids: list[str]


def measure(targets: Targets, *, seconds: float, concurrency: int, use_wrk: bool) -> list[Measured]:
    """Warm each server up, then one phase per endpoint, in a fixed order."""
    auth = [f"Authorization: Bearer {targets.secret}"]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as scratch:
        access_lua = Path(scratch) / "access.lua"
        access_lua.write_text(ACCESS_LUA % {"seed": 7, "prefix": ID_PREFIX, "n": len(targets.ids)})
        batch_lua = Path(scratch) / "batch.lua"
        batch_lua.write_text(
            BATCH_LUA % {"seed": 7, "prefix": ID_PREFIX, "n": len(targets.ids), "size": BATCH_SIZE}
        )
        bodies = [
            json.dumps({"account_ids": rng.sample(targets.ids, BATCH_SIZE)}).encode()
            for _ in range(64)
        ]
        # The bare apps get the very requests the access check gets (random known ids, the same
        # Authorization header), so that wrk spends the same on each of the three.
        access_requests = [
            _get(f"/v1/access/{i}", targets.secret) for i in rng.sample(targets.ids, 2000)
        ]
        phases: list[tuple[str, int, str, list[str], Path | None, list[bytes]]] = [
            ("starlette", targets.starlette, "/", auth, access_lua, access_requests),
            ("fastapi", targets.fastapi, "/", auth, access_lua, access_requests),
            ("healthz", targets.api, "/healthz", [], None, [_get("/healthz")]),
            ("access", targets.api, "/", auth, access_lua, access_requests),
            ("batch", targets.api, "/", auth, batch_lua,
             [_post("/v1/access:batch", body, targets.secret) for body in bodies]),
        ]  # fmt: skip
        results = []
        for name, port, path, headers, script, requests in phases:
            for phase_seconds, record in ((WARMUP_SECONDS, False), (seconds, True)):
                if use_wrk:
                    measured = run_wrk(
                        name,
                        f"http://127.0.0.1:{port}{path}",
                        seconds=phase_seconds,
                        concurrency=concurrency,
                        headers=headers,
                        script=script,
                    )
                else:
                    measured = run_python(
                        name, port, requests, seconds=phase_seconds, concurrency=concurrency
                    )
                if record:
                    results.append(measured)
                    print(measured.line(), flush=True)
    return results


def warm_cache(port: int, ids: list[str], secret: str) -> None:
    """Every id once through the batch endpoint, as steady traffic would have filled the cache."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for start in range(0, len(ids), 1000):
            response = http.post(
                "/v1/access:batch",
                json={"account_ids": ids[start : start + 1000]},
                headers={"Authorization": f"Bearer {secret}"},
            )
            response.raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument(
        "--python-generator", action="store_true", help="use the Python generator even with wrk"
    )
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python_generator
    if use_wrk:
        print(f"load: wrk -t1 -c{args.concurrency} -d{args.seconds:g}s", flush=True)
    else:
        print(
            "load: the Python generator (wrk not found; `sudo apt-get install wrk` measures "
            "without sharing the cores with a Python client)",
            flush=True,
        )

    sandbox = SandboxState()
    with ExitStack() as stack:
        server_url = stack.enter_context(postgres_server())
        database_url = stack.enter_context(fresh_database(server_url, "bench_access"))
        sandbox_url = stack.enter_context(running_sandbox(sandbox))
        upgrade(database_url)
        ids, secret = seed(database_url, args.clients)
        ports = {name: free_port() for name in ("starlette", "fastapi", "api")}
        python = sys.executable
        for name in ("starlette", "fastapi"):
            stack.enter_context(
                server(
                    [python, f"bench/bare_{name}.py", "--port", str(ports[name])],
                    f"http://127.0.0.1:{ports[name]}/v1/access/bench000001",
                    dict(os.environ),
                )
            )
        api_port = str(ports["api"])
        stack.enter_context(
            server(
                [python, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", api_port],
                f"http://127.0.0.1:{ports['api']}/readyz",
                api_env(database_url, sandbox_url),
            )
        )
        print(f"seeded {len(ids)} clients; servers on {ports}", flush=True)
        warm_cache(ports["api"], ids, secret)
        results = measure(
            Targets(ports["starlette"], ports["fastapi"], ports["api"], secret, ids),
            seconds=args.seconds,
            concurrency=args.concurrency,
            use_wrk=use_wrk,
        )
        ctct_calls = len(sandbox.calls.calls())

    by_name = {m.name: m for m in results}
    access, fastapi, starlette = by_name["access"], by_name["fastapi"], by_name["starlette"]
    healthz, batch = by_name["healthz"], by_name["batch"]
    print(
        f"concurrency={args.concurrency} ctct_calls={ctct_calls} "
        f"load={'wrk' if use_wrk else 'python'}"
    )
    print(
        f"RESULT access_rps={access.rps:.0f} fastapi_rps={fastapi.rps:.0f} "
        f"starlette_rps={starlette.rps:.0f} healthz_rps={healthz.rps:.0f} "
        f"ratio_fastapi={access.rps / fastapi.rps if fastapi.rps else 0:.3f} "
        f"ratio_starlette={access.rps / starlette.rps if starlette.rps else 0:.3f} "
        f"p50_ms={access.p50_ms:.2f} p99_ms={access.p99_ms:.2f} "
        f"fastapi_p99_ms={fastapi.p99_ms:.2f} batch_ids_per_s={batch.rps * BATCH_SIZE:.0f} "
        f"ctct_calls={ctct_calls}"
    )
    return 1 if any(m.errors for m in results) else 0


if __name__ == "__main__":
    sys.exit(main())
