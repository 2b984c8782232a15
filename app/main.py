"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from app.auth.service import KeyVerifier
from app.db import create_engine, create_sessionmaker
from app.errors import install_problem_handlers
from app.health.router import router as health_router
from app.kit.request_context import RequestContextMiddleware
from app.migrate import script_heads
from app.settings import Settings
from app.state import AppState


def create_app(
    settings: Settings | None = None,
    *,
    ctct_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the API; resources are created in the lifespan, never at import time."""
    resolved = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if resolved.database.url is None:
            raise RuntimeError("DATABASE_URL is not set (make run starts an embedded Postgres)")
        async with AsyncExitStack() as stack:
            engine = create_engine(
                resolved.database.url,
                pool_size=resolved.database.pool_size,
                max_overflow=resolved.database.max_overflow,
            )
            stack.push_async_callback(engine.dispose)
            sessionmaker = create_sessionmaker(engine)
            state = AppState(
                settings=resolved,
                engine=engine,
                sessionmaker=sessionmaker,
                key_verifier=KeyVerifier(sessionmaker),
                schema_heads=script_heads(),
            )
            app.state.resources = state
            yield

    app = FastAPI(
        title="partnergate",
        version="1.0.0",
        summary="Which Constant Contact accounts may use the integration, and why.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    return app
