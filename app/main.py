"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from app.access.router import ACCESS_CHECK_ENDPOINT
from app.access.router import router as access_router
from app.access.wiring import access_service
from app.audit.router import router as audit_router
from app.auth.service import KeyVerifier
from app.clients.router import router as clients_router
from app.console.app import create_console_app
from app.ctct.client import build_ctct_client
from app.ctct.webhook_signature import CtctKeys
from app.db import create_engine, create_sessionmaker
from app.errors import install_problem_handlers
from app.health.router import HEALTHZ_ENDPOINT
from app.health.router import router as health_router
from app.imports.router import router as imports_router
from app.kit.api_docs import install_api_docs
from app.kit.body_limit import BodyLimitMiddleware
from app.kit.crypto import PasswordCipher
from app.kit.pagination import CursorCodec
from app.kit.request_context import RequestContextMiddleware
from app.membership.login_router import router as login_router
from app.membership.router import router as membership_router
from app.membership.webhook_router import router as ctct_webhooks_router
from app.migrate import script_heads
from app.openapi import install_openapi
from app.overview.router import router as overview_router
from app.provisioning.router import accounts_router, provisioning_router
from app.settings import Settings
from app.state import AppState
from app.webhooks import operations as webhooks_operations
from app.webhooks.docs import document_events
from app.webhooks.router import router as webhooks_router
from app.webhooks.subscriber_router import router as webhook_subscribers_router


def create_app(
    settings: Settings | None = None,
    *,
    ctct_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the API; resources are created in the lifespan, never at import time."""
    resolved = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = resolved.database.url
        if database_url is None:
            raise RuntimeError("DATABASE_URL is not set (make run starts an embedded Postgres)")
        async with AsyncExitStack() as stack:
            engine = create_engine(
                database_url,
                pool_size=resolved.database.pool_size,
                max_overflow=resolved.database.max_overflow,
                pool_timeout=resolved.database.pool_timeout,
            )
            stack.push_async_callback(engine.dispose)
            sessionmaker = create_sessionmaker(engine)
            key_verifier = KeyVerifier(sessionmaker)
            stack.push_async_callback(key_verifier.aclose)
            ctct = build_ctct_client(
                resolved.ctct,
                engine=engine,
                transport=ctct_transport,
                on_quota_low=webhooks_operations.announce_quota_low,
            )
            stack.push_async_callback(ctct.aclose)
            ctct_keys = CtctKeys.build(resolved.webhook, transport=ctct_transport)
            stack.push_async_callback(ctct_keys.aclose)
            access = await stack.enter_async_context(
                access_service(
                    resolved,
                    database_url=database_url,
                    engine=engine,
                    sessionmaker=sessionmaker,
                    ctct=ctct,
                )
            )
            app.state.resources = AppState(
                settings=resolved,
                engine=engine,
                sessionmaker=sessionmaker,
                key_verifier=key_verifier,
                schema_heads=script_heads(),
                ctct=ctct,
                password_cipher=PasswordCipher(resolved.provision.encryption_keys),
                ctct_keys=ctct_keys,
                cursors=CursorCodec.from_secret(resolved.cursor_signing_secret()),
                access=access,
            )
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
    install_openapi(app)
    # Added first, so it runs inside RequestContextMiddleware (a 413 still gets its request id).
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=resolved.max_body_bytes,
        # An import file may be larger than any JSON body (IMPORTS_MAX_BYTES).
        per_path={imports_router.prefix: resolved.imports.max_bytes},
    )
    app.add_middleware(RequestContextMiddleware)
    # The hot paths come first (routes are matched in order), as plain ASGI endpoints; their
    # FastAPI twins in access_router and health_router document them in /openapi.json.
    # Ahead of FastAPI's own /openapi.json and /docs routes too: one regex each per request.
    app.router.routes[:0] = [ACCESS_CHECK_ENDPOINT.route(), HEALTHZ_ENDPOINT.route()]
    app.include_router(access_router)
    app.include_router(health_router)
    app.include_router(clients_router)
    app.include_router(membership_router)
    app.include_router(login_router)
    app.include_router(overview_router)
    app.include_router(audit_router)
    app.include_router(imports_router)
    app.include_router(webhooks_router)
    app.include_router(webhook_subscribers_router)
    app.include_router(ctct_webhooks_router)
    app.include_router(accounts_router)
    app.include_router(provisioning_router)
    document_events(app)
    install_api_docs(app)
    app.mount("/console", create_console_app(resolved, lambda: app.state.resources))
    return app
