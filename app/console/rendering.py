"""Templates and the few helpers every page uses: render, redirect with a flash message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.console.deps import Visitor, get_kit
from app.console.kit import Flash
from app.people.models import Role

TEMPLATES = Path(__file__).parent / "templates"


def when(value: datetime | None) -> str:
    """A timestamp as people read it: `2026-11-22 07:40 UTC`."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago: `3 min`, `2 h 5 min`, `4 d`."""
    if value is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def duration(ms: int | None) -> str:
    return "-" if ms is None else str(timedelta(milliseconds=ms)).split(".")[0]


templates = Jinja2Templates(directory=TEMPLATES)
templates.env.filters["when"] = when
templates.env.filters["age"] = age
templates.env.filters["duration"] = duration
templates.env.globals["Role"] = Role


def prefix(request: Request) -> str:
    """Where the console is mounted (`/console`)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def render(
    request: Request,
    template: str,
    visitor: Visitor,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A page, with the person, their CSRF token and any flash message of the last action."""
    kit = get_kit(request)
    flash = kit.read_flash(request)
    if flash is not None:
        kit.queue_flash(request, None)
    values: dict[str, Any] = {
        "visitor": visitor,
        "prefix": prefix(request),
        "flash": flash,
        "errors": {},
        "values": {},
        "auth_mode": kit.config.auth.value,
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def redirect(
    request: Request, path: str, *, flash: Flash | None = None, query: dict[str, str] | None = None
) -> RedirectResponse:
    """303 to a console path (after a POST), with a message for the next page."""
    if flash is not None:
        get_kit(request).queue_flash(request, flash)
    target = prefix(request) + path
    if query:
        target += "?" + urlencode(query)
    return RedirectResponse(target, status_code=303)
