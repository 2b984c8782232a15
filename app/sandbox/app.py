"""`create_sandbox_app`: the simulator as its own ASGI app (Starlette, no middleware)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from app.sandbox import control_api, errors, partner_api, partner_webhooks, webhooks
from app.sandbox.demo import describe_demo, seed_demo
from app.sandbox.state import SandboxState

CONTROL_PREFIX = "/_sandbox"

__all__ = ["CONTROL_PREFIX", "create_sandbox_app", "describe_demo", "seed_demo"]


async def _route_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        key, message = errors.METHOD_NOT_ALLOWED_ERROR_KEY, f"{request.method} is not allowed"
    else:
        key, message = errors.ROUTE_NOT_FOUND_ERROR_KEY, "The requested resource was not found."
    return JSONResponse(errors.error_list(key, message), status_code=status)


def create_sandbox_app(state: SandboxState | None = None, *, control: bool = True) -> Starlette:
    """The sandbox app; its state is `app.state.sandbox`, the control API only if `control`."""
    routes: list[BaseRoute] = [
        *partner_api.routes,
        *partner_webhooks.routes,
        *webhooks.public_routes,
    ]
    if control:
        routes.append(Mount(CONTROL_PREFIX, routes=[*control_api.routes, *webhooks.control_routes]))
    app = Starlette(routes=routes, exception_handlers={404: _route_error, 405: _route_error})
    app.state.sandbox = state if state is not None else SandboxState()
    return app
