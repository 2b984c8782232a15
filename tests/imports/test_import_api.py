"""`POST /v1/imports`: a CSV upload becomes a background job with progress and a report."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.scopes import Scope
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.clients.support import assert_problem
from tests.conftest import FAST_CTCT, TEST_FERNET_KEY, ApiKeyFactory, Headers, build_settings
from tests.kit.polling import poll_until

URL = "/v1/imports"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return build_settings(
        database_url,
        ctct=FAST_CTCT,
        provision={
            "encryption_keys": [TEST_FERNET_KEY],
            "worker_concurrency": 2,
            "worker_poll_seconds": 0.05,
        },
        imports={"max_rows": 50, "max_bytes": 4096},
    )


@pytest.fixture
def transport(sandbox: SandboxState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_sandbox_app(sandbox))


@pytest.fixture
async def api(settings: Settings, transport: httpx.ASGITransport) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(settings, ctct_transport=transport)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://partnergate.test"
    ) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, transport: httpx.ASGITransport) -> AsyncIterator[None]:
    from app.worker.main import run_worker

    task = asyncio.create_task(
        run_worker(settings, ctct_transport=transport, install_signal_handlers=False)
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def importer(api_key: ApiKeyFactory) -> Headers:
    key = await api_key(Scope.CLIENTS_DECIDE, Scope.CLIENTS_READ, name="ops-carol")
    return {"Authorization": f"Bearer {key}"}


def _csv(*rows: tuple[str, str, str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["encoded_account_id", "login_name", "wish", "note"])
    writer.writerows(rows)
    return buffer.getvalue()


async def test_an_uploaded_file_runs_in_the_background_with_progress_and_a_report(
    http: httpx.AsyncClient,
    worker: None,
    importer: Headers,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ours = sandbox.seed_account(login_name="jack_box01")
    theirs = sandbox.seed_account(partner="other")
    body = _csv(
        ("", "JACK_BOX01", "approved", ""),
        (theirs.encoded_account_id, "", "billing_approved", "resold through us"),
        ("a0nobody0001", "", "", ""),
        ("", "", "", "no id"),
    )

    created = await http.post(URL, content=body, headers={**importer, **CSV})
    assert created.status_code == 202, created.text
    location = created.headers["Location"]
    assert created.json()["state"] == "queued"
    assert created.json()["rows_total"] == 4

    async def progress() -> dict[str, Any]:
        response = await http.get(location, headers=importer)
        result: dict[str, Any] = response.json()
        return result

    done = await poll_until(progress, lambda job: job["state"] == "completed", timeout=30)
    assert done["outcomes"] == {"added": 1, "billing_approved": 1, "not_found": 1, "refused": 1}
    assert (done["rows_done"], done["pages_read"], done["list_calls"]) == (4, 1, 1)
    assert done["probe_calls"] == 2
    report = await http.get(done["report_url"], headers=importer)
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["line"], r["outcome"], r["resolved_account_id"]) for r in rows] == [
        ("2", "added", ours.encoded_account_id),
        ("3", "billing_approved", theirs.encoded_account_id),
        ("4", "not_found", "a0nobody0001"),
        ("5", "refused", ""),
    ]
    async with sessionmaker() as session:
        actors = await session.execute(
            text("SELECT source, actor FROM status_event WHERE to_status = 'billing_approved'")
        )
        assert actors.all() == [("person", "ops-carol")]


async def test_a_dry_run_stores_the_report_and_changes_no_client(
    http: httpx.AsyncClient,
    worker: None,
    importer: Headers,
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ours = sandbox.seed_account()
    created = await http.post(
        f"{URL}?dry_run=true",
        content=_csv((ours.encoded_account_id, "", "", "")),
        headers={
            **importer,
            **CSV,
        },
    )
    location = created.headers["Location"]

    async def state() -> str:
        return str((await http.get(location, headers=importer)).json()["state"])

    await poll_until(state, lambda value: value == "completed", timeout=30)
    job = (await http.get(location, headers=importer)).json()
    assert (job["dry_run"], job["outcomes"]) == (True, {"added": 1})
    async with sessionmaker() as session:
        clients = await session.execute(text("SELECT count(*) FROM client"))
        assert clients.scalar_one() == 0


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("login_name\nx\n", {"Content-Type": "application/json"}, 415),
        ("name\nx\n", CSV, 400),
        ("login_name\n" + "x\n" * 51, CSV, 400),
        ("login_name\n" + "x" * 5000 + "\n", CSV, 413),
    ],
    ids=["media-type", "no-id-column", "too-many-rows", "too-large"],
)
async def test_a_bad_upload_is_a_problem_and_stores_nothing(
    http: httpx.AsyncClient,
    importer: Headers,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = await http.post(URL, content=body, headers={**importer, **headers})

    assert_problem(response, status)
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM import_job"))).scalar_one() == 0


async def test_imports_need_clients_decide_and_reading_one_needs_clients_read(
    http: httpx.AsyncClient, reader: Headers, importer: Headers
) -> None:
    assert_problem(await http.post(URL, content="login_name\nx\n", headers={**reader, **CSV}), 403)
    assert_problem(await http.get(f"{URL}/12345", headers=importer), 404)
