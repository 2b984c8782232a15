"""Background jobs: one procrastinate App (`app.kit.jobs.job_app`); job modules are listed here.

The App is built at import without opening anything: its connector connects only when the
worker (`partnergate worker`) opens it. The API defers jobs on its own transaction's connection.
"""

from __future__ import annotations

from app.kit.jobs import job_app

# Every module that registers tasks on the App in this tree. `kit.jobs.TASK_MODULES` names the
# job modules of the finished layout (app/worker/*_jobs.py); until the other domains' jobs move
# there, the worker imports these.
TASK_MODULES: tuple[str, ...] = (
    "app.worker.maintenance",
    "app.provisioning.tasks",
    "app.worker.audit_jobs",
    "app.events.tasks",
)
job_app.import_paths = list(TASK_MODULES)

# The name the worker and the domains not yet moved use for the one App.
worker_app = job_app
