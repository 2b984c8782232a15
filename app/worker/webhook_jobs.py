"""Placeholder (issue 10): the webhook delivery job still lives in `app.events.tasks` until
part B moves it here; importing that module registers it on `job_app`."""

from __future__ import annotations

from app.events import tasks

__all__ = ["tasks"]
