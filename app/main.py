"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from app.access.lifecycle import access_resources
from app.access.router import router as access_router
from app.auth.service import KeyVerifier
from app.clients.router import router as clients_router
from app.console.app import create_console_app
from app.ctct.client import build_ctct_client
from app.db import create_engine, create_sessionmaker
from app.errors import install_problem_handlers
from app.events import service as events_service
from app.events.ctct_router import router as ctct_webhooks_router
from app.events.ctct_signature import CtctKeys
from app.events.router import router as events_router
from app.health.router import router as health_router
from app.kit.api_docs import install_api_docs
from app.kit.request_context import RequestContextMiddleware
from app.membership.audit_router import router as audit_router
from app.migrate import script_heads
from app.provisioning.crypto import PasswordCipher
from app.provisioning.router import accounts_router, provisioning_router
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
            state.ctct = build_ctct_client(resolved.ctct, engine=engine, transport=ctct_transport)
            stack.push_async_callback(state.ctct.aclose)
            state.password_cipher = PasswordCipher(resolved.provision.encryption_keys)
            state.ctct_keys = CtctKeys.build(resolved.webhook, transport=ctct_transport)
            stack.push_async_callback(state.ctct_keys.aclose)
            await stack.enter_async_context(access_resources(state))
            events_service.configure(resolved.webhook)
            stack.callback(events_service.configure, None)
            app.state.resources = state
            yield

    app = FastAPI(
        title="partnergate",
        version="1.0.0",
        summary="Which Constant Contact accounts may use the integration, and why.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    # The hot path comes first: routes are matched in order.
    app.include_router(access_router)
    app.include_router(health_router)
    app.include_router(clients_router)
    app.include_router(audit_router)
    app.include_router(events_router)
    app.include_router(ctct_webhooks_router)
    app.include_router(accounts_router)
    app.include_router(provisioning_router)
    install_api_docs(app)
    app.mount("/console", create_console_app(resolved, lambda: app.state.resources))
    return app
