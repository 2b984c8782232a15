"""A client's history as one timeline: status changes and transfer request steps, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.clients.schemas import ClientDetail


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    change: str
    source: str
    actor: str | None
    note: str | None
    reason: str | None = None
    audit_run_id: int | None = None


def timeline(client: ClientDetail) -> list[Entry]:
    """Every status event and transfer request event of the client, newest first."""
    entries = [
        Entry(
            at=event.created_at,
            kind="status",
            change=(
                f"{event.from_status.value} → {event.to_status.value}"
                if event.from_status
                else f"first seen as {event.to_status.value}"
            ),
            source=event.source,
            actor=event.actor,
            note=event.note,
            reason=event.reason,
            audit_run_id=event.audit_run_id,
        )
        for event in client.events
    ]
    for request in client.transfer_requests:
        for step in request.history:
            entries.append(
                Entry(
                    at=step.created_at,
                    kind=f"transfer request {request.id}",
                    change=(
                        f"{step.from_state.value} → {step.to_state.value}"
                        if step.from_state
                        else f"filed ({step.to_state.value})"
                    ),
                    source=step.source,
                    actor=step.actor,
                    note=step.note,
                    audit_run_id=step.audit_run_id,
                )
            )
    return sorted(entries, key=lambda entry: entry.at, reverse=True)
