"""Liveness, readiness and metrics for orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.types import Scope

from app.deps import StateDep
from app.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from app.kit.asgi import JsonEndpoint
from app.provisioning import metrics as outbox_metrics

router = APIRouter(tags=["health"])
READINESS_TIMEOUT_SECONDS = 2.0


_HEALTHY = b'{"status":"ok"}'


async def _healthy(_scope: Scope) -> bytes:
    return _HEALTHY


# Served ahead of every other route (see app.kit.asgi and create_app); `healthz` documents it.
HEALTHZ_ENDPOINT = JsonEndpoint("/healthz", _healthy)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves requests; no I/O."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(state: StateDep) -> dict[str, object] | JSONResponse:
    """Postgres answers and the schema is at the newest migration."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), state.engine.connect() as conn:
            has_history = await conn.scalar(text("SELECT to_regclass('alembic_version')"))
            rows = (
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
                if has_history
                else []
            )
    except Exception as exc:  # any failure to reach the database means "not ready"
        return _not_ready("database", f"Postgres did not answer: {type(exc).__name__}")
    current = tuple(sorted(row[0] for row in rows))
    expected = tuple(sorted(state.schema_heads))
    if current != expected:
        return _not_ready(
            "migrations",
            f"schema is at {', '.join(current) or 'nothing'}; expected {', '.join(expected)}",
        )
    return {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def _not_ready(check: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": PROBLEM_BASE + "not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": detail,
            "failing_check": check,
        },
        status_code=503,
        media_type=PROBLEM_CONTENT_TYPE,
    )


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """Prometheus text exposition."""
    await outbox_metrics.refresh(state.sessionmaker)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
