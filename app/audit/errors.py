"""The audit's problems: each carries its HTTP status and a stable problem type.

AppError
 ├── Conflict (409)
 │    ├── AuditInProgress   a run is already queued or running
 │    └── NothingHeld       the run holds no demotions to confirm or reject
 └── NotFound (404)
      └── AuditNotFound     no such run
"""

from __future__ import annotations

from app.errors import Conflict, NotFound


class AuditInProgress(Conflict):
    type_slug = "audit-in-progress"
    title = "An audit is already in progress"


class AuditNotFound(NotFound):
    type_slug = "audit-not-found"
    title = "No such audit"


class NothingHeld(Conflict):
    type_slug = "audit-nothing-held"
    title = "This audit holds no demotions"
