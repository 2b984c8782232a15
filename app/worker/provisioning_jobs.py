"""Placeholder (issue 10): the provisioning jobs still live in `app.provisioning.tasks` until
part C moves them here; `app.kit.jobs.job_app` imports every module of its TASK_MODULES."""

from __future__ import annotations

from app.provisioning import tasks

__all__ = ["tasks"]
