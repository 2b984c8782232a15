"""Background jobs: one procrastinate App; each domain's tasks module is listed in TASK_MODULES.

The App is built at import without opening anything: its connector connects only when the
worker (`partnergate worker`) opens it. The API defers jobs on its own transaction's connection.
"""

from __future__ import annotations

import procrastinate

# Every module that registers tasks on `worker_app`; add a domain's module here.
TASK_MODULES: tuple[str, ...] = (
    "app.worker.maintenance",
    "app.provisioning.tasks",
    "app.membership.audit_tasks",
)

worker_app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(),
    import_paths=list(TASK_MODULES),
)
