"""Placeholder (issue 10): the audit's jobs still live in `app.membership.audit_tasks` until
part A moves them here; `app.kit.jobs.job_app` imports every module of its TASK_MODULES."""

from __future__ import annotations

from app.membership import audit_tasks

__all__ = ["audit_tasks"]
