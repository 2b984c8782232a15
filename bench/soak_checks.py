"""The soak's failures and its verdict: the kills, the on-demand audit, and what the database
and the sandbox say once the load has stopped."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

from app.db import libpq_url
from bench.soak_load import Api, Load, Tally

if TYPE_CHECKING:
    from bench.soak import Proc

DRAIN_SECONDS = 180.0
GOALS = "server_errors=0 lost=0 duplicates=0 max_propagation_ms<=1000 audits_per_period=1 "
GOALS += "rss_growth<=0.10"


async def _until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _sample_at(proc: Proc, moment: float, life: int) -> None:
    await _until(moment)
    if proc.restarts == life:
        proc.sample("warm")


async def chaos(
    apis: list[Proc],
    workers: list[Proc],
    api_clients: list[Api],
    started: float,
    duration: float,
    warmup: float,
    down: float,
) -> None:
    """Warm-up samples; SIGKILL a worker at 35 % and an API at 60 %, each restarted after
    `down` seconds (the two on their own clocks: a slow restart delays nothing else)."""
    end = started + duration
    samples = [asyncio.create_task(_sample_at(p, started + warmup, 0)) for p in apis + workers]
    await asyncio.gather(
        _kill_and_restart(workers[0], None, started, started + duration * 0.35, down),
        _kill_and_restart(apis[1], api_clients[1], started, started + duration * 0.6, down),
    )
    for proc in (workers[0], apis[1]):
        if proc.started_at + warmup < end - 5:
            samples.append(
                asyncio.create_task(_sample_at(proc, proc.started_at + warmup, proc.restarts))
            )
    await asyncio.gather(*samples)


async def _kill_and_restart(
    proc: Proc, api: Api | None, started: float, at: float, down: float
) -> None:
    await _until(at)
    if api is not None:
        api.up = False
    proc.kill()
    proc.rss.clear()
    print(
        f"{time.monotonic() - started:6.1f}s {datetime.now(UTC):%H:%M:%S} killed {proc.name} "
        "(SIGKILL)",
        flush=True,
    )
    await asyncio.sleep(down)
    proc.start()
    try:
        await proc.ready("/healthz" if api is None else "/readyz")
    except RuntimeError as exc:
        proc.failed = str(exc)
        print(f"{time.monotonic() - started:6.1f}s {exc}", flush=True)
        return
    if api is not None:
        api.up = True
    print(f"{time.monotonic() - started:6.1f}s {proc.name} serves again", flush=True)


async def on_demand_audit(load: Load, at: float, period: int) -> str:
    """`POST /v1/audits` once and follow it to its end. It starts early in a period: a run
    active at the next tick would, by design, make that period's scheduled run skip."""
    await _until(at)
    phase = time.time() % period
    if not 5 <= phase <= period / 3:
        await asyncio.sleep((period - phase + 5) % period)
    for _ in range(30):
        started = await load.send("POST", "/v1/audits")
        if started is not None and started.status_code == 202:
            break
        await asyncio.sleep(1.0)
    else:
        return "not started"
    location = started.headers["Location"]
    for _ in range(120):
        run = await load.send("GET", location)
        if run is not None and run.status_code == 200:
            state = str(run.json()["state"])
            if state not in ("queued", "running"):
                return state
        await asyncio.sleep(0.5)
    return "unfinished"


@dataclass
class Report:
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    periods: dict[datetime, list[str]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    provision_states: Counter[str] = field(default_factory=Counter)


def _rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


async def verify(
    database_url: str,
    sandbox_url: str,
    tally: Tally,
    workers_up: float,
    load_end: float,
    period: int,
) -> Report:
    report = Report()
    keys = list(tally.accepted)
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        rows = _rows(
            database_url,
            "SELECT idempotency_key, state FROM provisioning_request "
            "WHERE idempotency_key = ANY(%s)",
            keys,
        )
        report.provision_states = Counter(state for _, state in rows)
        pending = report.provision_states["pending"] + report.provision_states["in_flight"]
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    states = {key: state for key, state in rows}
    report.lost += [
        f"provision {k}: {states.get(k, 'no row')}" for k in keys if states.get(k) != "succeeded"
    ]
    report.lost += [f"unanswered {name}" for name in tally.unanswered]
    report.lost += [f"rejected {name}: {status}" for name, status in tally.rejected.items()]
    known = {row[0] for row in _rows(database_url, "SELECT encoded_account_id FROM client")}
    report.lost += [f"registration {a}: not stored" for a in tally.registered - known]
    for key, count in _rows(
        database_url,
        "SELECT idempotency_key, count(*) FROM provisioning_request "
        "GROUP BY api_key_id, idempotency_key HAVING count(*) > 1",
    ):
        report.duplicates.append(f"request {key} x{count}")
    logins: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/_sandbox", timeout=60) as control:
        offset = 0
        while True:
            page = (await control.get("/accounts", params={"offset": offset})).json()
            logins.update(account["login_name"] for account in page["accounts"])
            offset += len(page["accounts"])
            if not page["accounts"] or offset >= page["total"]:
                break
    report.duplicates += [f"account {login} x{n}" for login, n in logins.items() if n > 1]
    report.lost += [f"account {k}: not created" for k in keys if logins[k] == 0]
    runs = _rows(
        database_url,
        "SELECT scheduled_for, state, started_at, finished_at, trigger, error FROM audit_run "
        "ORDER BY id",
    )
    report.runs = [
        f"{trigger:8} {(scheduled_for or started_at):%H:%M:%S} {state:10} "
        f"{(finished_at - started_at).total_seconds() if finished_at and started_at else 0:5.1f}s"
        f" {error or ''}"
        for scheduled_for, state, started_at, finished_at, trigger, error in runs
    ]
    # Every tick from the first after the workers started to the last before the load ended.
    first = math.ceil((workers_up + 1) / period) * period
    last = math.floor((load_end - 1) / period) * period
    for tick in range(first, last + 1, period):
        report.periods[datetime.fromtimestamp(tick, UTC)] = []
    for scheduled_for, state, *_ in runs:
        if scheduled_for in report.periods:
            report.periods[scheduled_for].append(state)
    return report


def print_report(report: Report, tally: Tally, procs: list[Proc], load_seconds: float) -> int:
    per_period = [len(states) for states in report.periods.values()]
    odd = [n for n in per_period if n != 1]
    audits_per_period = (max(odd) if any(n > 1 for n in odd) else min(odd)) if odd else 1
    if not per_period:
        audits_per_period = 0
    growth = {
        p.name: (p.rss["end"] - p.rss["warm"]) / p.rss["warm"]
        for p in procs
        if "warm" in p.rss and "end" in p.rss
    }
    rss_growth = max(growth.values(), default=0.0)
    propagation = max(tally.propagation_ms, default=0.0)
    ordered = sorted(tally.propagation_ms)
    p50 = ordered[len(ordered) // 2] if ordered else 0.0
    print(
        f"load: {tally.requests} answered requests in {load_seconds:.0f} s "
        f"({tally.requests / load_seconds:.0f}/s)"
    )
    for (route, status), count in sorted(tally.answers.items()):
        print(f"  {route:40} {status}  {count}")
    print(f"connection errors (killed processes): {dict(tally.connection_errors)}")
    print(f"timeouts: {dict(tally.timeouts)}")
    for line in tally.server_errors[:10]:
        print(f"server error: {line}")
    print(
        f"provisioning: {len(tally.accepted)} accepted; final states "
        f"{dict(report.provision_states)}; registrations {len(tally.registered)}"
    )
    for line in (report.lost + report.duplicates)[:20]:
        print(f"  {line}")
    print(
        f"billing decisions: {tally.decisions} ({tally.decision_conflicts} refused); "
        f"propagation p50 {p50:.0f} ms, max {propagation:.0f} ms, "
        f"{tally.propagation_misses} not seen within 5 s"
    )
    for line in report.runs:
        print(f"audit run: {line}")
    print(
        "scheduled audits per period: "
        + ", ".join(f"{t:%H:%M:%S} {'/'.join(s) or '-'}" for t, s in report.periods.items())
    )
    for proc in procs:
        warm, end = proc.rss.get("warm"), proc.rss.get("end")
        shown = f"{(end - warm) / warm:+.3f}" if warm and end else "n/a (restarted too late)"
        print(f"rss {proc.name:8} warm {warm or 0:>11,} end {end or 0:>11,} {shown}")
    print(f"goals: {GOALS}")
    print(
        f"RESULT minutes={load_seconds / 60:.2f} requests={tally.requests} "
        f"server_errors={len(tally.server_errors)} lost={len(report.lost)} "
        f"duplicates={len(report.duplicates)} max_propagation_ms={propagation:.0f} "
        f"audits_per_period={audits_per_period} rss_growth={rss_growth:.3f}"
    )
    for proc in procs:
        if proc.failed:
            print(f"not restarted: {proc.failed}")
    ok = (
        not any(proc.failed for proc in procs)
        and not tally.server_errors
        and not report.lost
        and not report.duplicates
        and propagation <= 1000
        and audits_per_period == 1
        and rss_growth <= 0.10
    )
    return 0 if ok else 1
