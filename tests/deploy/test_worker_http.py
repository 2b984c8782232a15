"""The worker serves /healthz and /metrics on its own port (WORKER_HOST, WORKER_PORT)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import procrastinate
import pytest
from procrastinate.testing import InMemoryConnector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.sandbox.server import running_sandbox
from app.settings import WorkerSettings
from app.worker import job_metrics
from app.worker.http_server import Phase, serving
from tests.conftest import ApiKeyFactory, new_sandbox
from tests.kit.polling import poll_until
from tests.provisioning.processes import free_port, process_env, processes

LOOPBACK = WorkerSettings(host="127.0.0.1", port=0)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric: labels -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def bare_job_app() -> procrastinate.App:
    return procrastinate.App(connector=InMemoryConnector())


async def test_healthz_is_503_until_the_worker_runs_then_200(
    sessionmaker: async_sessionmaker[AsyncSession], bare_job_app: procrastinate.App
) -> None:
    async with serving(LOOPBACK, sessionmaker=sessionmaker, job_app=bare_job_app) as status:
        assert status.port != 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{status.port}") as http:
            starting = await http.get("/healthz")
            status.phase = Phase.RUNNING
            running = await http.get("/healthz")

    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
    assert (running.status_code, running.json()) == (200, {"status": "ok"})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", status.port), timeout=1).close()


async def test_metrics_show_the_outbox_and_the_job_metrics(
    sessionmaker: async_sessionmaker[AsyncSession], bare_job_app: procrastinate.App
) -> None:
    async with (
        serving(LOOPBACK, sessionmaker=sessionmaker, job_app=bare_job_app) as status,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{status.port}") as http,
    ):
        response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert samples(response.text, "partnergate_outbox_depth") == {(): 0.0}
    for family in ("partnergate_worker_jobs_total", "partnergate_worker_job_seconds"):
        assert f"# TYPE {family.removesuffix('_total')}" in response.text


async def test_a_taken_port_fails_the_worker_at_once_with_the_setting_to_change(
    sessionmaker: async_sessionmaker[AsyncSession], bare_job_app: procrastinate.App
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = WorkerSettings(host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="set WORKER_PORT"):
            async with serving(busy, sessionmaker=sessionmaker, job_app=bare_job_app):
                pass


async def test_queue_stats_count_a_due_job_and_its_wait(
    client: httpx.AsyncClient,
    api_key: ApiKeyFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = await api_key(Scope.AUDITS_RUN)
    started = await client.post("/v1/audits", headers={"Authorization": f"Bearer {key}"})
    assert started.status_code == 202

    async with sessionmaker() as session:
        stats = await job_metrics.queue_stats(session)

    [audit] = [entry for entry in stats if entry.waiting]
    assert (audit.waiting, audit.in_progress) == (1, 0)
    assert 0 <= audit.oldest_wait_seconds < 60


@pytest.mark.slow
async def test_a_worker_process_reports_its_audit_ctct_calls_token_fetches_and_jobs(
    database_url: str, client: httpx.AsyncClient, api_key: ApiKeyFactory, tmp_path: Path
) -> None:
    sandbox = new_sandbox(rate_per_second=100_000)
    sandbox.seed_accounts(3, partner="ours")
    key = await api_key(Scope.AUDITS_RUN, Scope.CLIENTS_READ)
    auth = {"Authorization": f"Bearer {key}"}
    port = free_port()
    with (
        running_sandbox(sandbox) as sandbox_url,
        processes(process_env(database_url, sandbox_url), tmp_path) as group,
    ):
        await group.running_worker(WORKER_PORT=str(port))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as worker_http:
            health = await poll_until(
                lambda: worker_http.get("/healthz"), lambda r: r.status_code == 200, timeout=30
            )
            assert health.json() == {"status": "ok"}

            started = await client.post("/v1/audits", headers=auth)
            run_url = started.headers["Location"]
            await poll_until(
                lambda: client.get(run_url, headers=auth),
                lambda r: r.json()["state"] == "completed",
                timeout=30,
                interval=0.2,
            )
            text = (await worker_http.get("/metrics")).text

    assert samples(text, "partnergate_audit_runs_total") == {(("state", "completed"),): 1.0}
    list_calls = {
        labels: value
        for labels, value in samples(text, "partnergate_ctct_calls_total").items()
        if value
    }
    assert list_calls, text
    assert sum(samples(text, "partnergate_ctct_token_fetches_total").values()) >= 1
    jobs = samples(text, "partnergate_worker_jobs_total")
    assert any(
        dict(labels)["outcome"] == "succeeded" and "audit" in dict(labels)["task"]
        for labels in jobs
    ), jobs
    assert samples(text, "partnergate_worker_job_seconds_count")
    assert "partnergate_jobs_waiting" in text
    assert samples(text, "partnergate_outbox_oldest_age_seconds") == {(): 0.0}
