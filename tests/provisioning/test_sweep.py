"""The worker's sweep: abandoned in-flight requests, lost jobs, expired keys, stale passwords."""

from __future__ import annotations

import httpx
import psycopg
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import libpq_url
from app.kit.crypto import PasswordCipher
from app.provisioning.resources import ProvisioningResources
from app.settings import Settings
from app.worker.provisioning_jobs import sweep_once
from tests.provisioning.conftest import body_for, table_rows, unique_login


def _execute(database_url: str, statement: str) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


async def test_the_sweep_returns_abandoned_work_and_releases_old_keys(
    api: httpx.AsyncClient,
    app: FastAPI,
    sandbox: httpx.AsyncClient,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    await sandbox.post("/_sandbox/faults", json={"kind": "unavailable", "operation": "create"})
    for key in ("abandoned", "orphan"):
        response = await api.post(
            "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": key}
        )
        assert response.status_code == 202
    await sandbox.delete("/_sandbox/faults")
    done = await api.post(
        "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": "old"}
    )
    assert done.status_code == 201
    # A sender died mid-call; another request lost its job; the finished one is a day old.
    _execute(
        database_url,
        "UPDATE provisioning_request SET state = 'in_flight', may_exist = false, "
        "lease_expires_at = now() - interval '1 second' WHERE idempotency_key = 'abandoned'",
    )
    _execute(database_url, "DELETE FROM procrastinate_jobs")
    _execute(
        database_url,
        "UPDATE provisioning_request SET next_attempt_at = now() - interval '1 minute', "
        "created_at = now() - interval '25 hours' WHERE idempotency_key IN ('orphan', 'old')",
    )
    state = app.state.resources

    await sweep_once(
        ProvisioningResources(
            settings=settings,
            sessionmaker=sessionmaker,
            ctct=state.ctct,
            cipher=PasswordCipher(settings.provision.encryption_keys),
        )
    )

    rows = table_rows(
        database_url,
        "SELECT login_name, idempotency_key, state, may_exist "
        "FROM provisioning_request ORDER BY id",
    )
    assert [(key, state, may_exist) for _, key, state, may_exist in rows] == [
        ("abandoned", "pending", True),
        ("orphan", "pending", True),
        (None, "succeeded", False),
    ]
    jobs = table_rows(
        database_url,
        "SELECT queueing_lock FROM procrastinate_jobs WHERE status = 'todo' ORDER BY id",
    )
    # The abandoned one's outcome is unknown: it waits for a read of the partner list.
    assert sorted(jobs) == [("provisioning-1",), ("provisioning-2",), ("provisioning-reconcile",)]
    reused = await api.post(
        "/v1/accounts", json=body_for(unique_login()), headers={"Idempotency-Key": "old"}
    )
    assert reused.status_code == 201
