"""Transfer requests: a person's workflow, and their completion when the account becomes ours.

Billing approval, the other person decision, lives in `app.clients.service`.

Transfer request states (DESIGN.md §3):

    requested ──> submitted ──> completed | rejected
        │             │
        └─────────────┴──> withdrawn

`completed` is also reached from `requested` when the audit finds the account in our list.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import repository
from app.clients import service as clients_service
from app.clients.evidence import NOT_OURS
from app.clients.models import (
    OPEN_TRANSFER_STATES,
    Client,
    ClientStatus,
    TransferRequest,
    TransferRequestEvent,
    TransferState,
)
from app.clients.service import Actor
from app.db import utcnow
from app.errors import Conflict, NotFound

log = structlog.get_logger(__name__)

TRANSITIONS: dict[TransferState, frozenset[TransferState]] = {
    TransferState.REQUESTED: frozenset({TransferState.SUBMITTED, TransferState.WITHDRAWN}),
    TransferState.SUBMITTED: frozenset(
        {TransferState.COMPLETED, TransferState.REJECTED, TransferState.WITHDRAWN}
    ),
    TransferState.COMPLETED: frozenset(),
    TransferState.REJECTED: frozenset(),
    TransferState.WITHDRAWN: frozenset(),
}


def may_transfer(client: Client) -> bool:
    """Unaffiliated by CTCT's evidence (billing-approved or not)."""
    return client.evidence_status == ClientStatus.UNAFFILIATED and ClientStatus(client.status) in (
        NOT_OURS | {ClientStatus.BILLING_APPROVED}
    )


async def _record(
    session: AsyncSession,
    request: TransferRequest,
    previous: TransferState | None,
    *,
    actor: Actor,
    note: str | None,
) -> None:
    await repository.add_transfer_event(
        session,
        TransferRequestEvent(
            transfer_request_id=request.id,
            from_state=previous.value if previous else None,
            to_state=request.state,
            source=actor.source.value,
            actor=actor.name,
            note=note,
            audit_run_id=actor.audit_run_id,
        ),
    )


async def file_transfer_request(
    session: AsyncSession, encoded_account_id: str, *, note: str, actor: Actor
) -> TransferRequest:
    """Open a transfer request for an unaffiliated client (one open request per client)."""
    client = await clients_service.get(session, encoded_account_id, for_update=True)
    if not may_transfer(client):
        raise Conflict(
            f"transfer requests apply to unaffiliated clients; this one is {client.status}"
        )
    if await repository.open_transfers(session, client.id):
        raise Conflict("this client already has an open transfer request")
    request = await repository.add_transfer(
        session,
        TransferRequest(
            client_id=client.id,
            state=TransferState.REQUESTED.value,
            note=note,
            requested_by=actor.name,
        ),
    )
    await _record(session, request, None, actor=actor, note=note)
    log.info(
        "clients.transfer_request.filed",
        client=encoded_account_id,
        transfer_request=request.id,
        actor=actor.name,
    )
    return request


async def _move(
    session: AsyncSession,
    request: TransferRequest,
    to: TransferState,
    *,
    actor: Actor,
    note: str | None,
) -> None:
    previous = TransferState(request.state)
    now = utcnow()
    request.state = to.value
    request.updated_at = now
    if to not in OPEN_TRANSFER_STATES:
        request.closed_at = now
    await session.flush()
    await _record(session, request, previous, actor=actor, note=note)


async def change_transfer_request(
    session: AsyncSession,
    request_id: int,
    to: TransferState,
    *,
    note: str | None,
    actor: Actor,
    expected_version: int | None = None,
) -> tuple[TransferRequest, str]:
    """Move a transfer request along its workflow (409 for an illegal transition)."""
    found = await repository.transfer_by_id(session, request_id, for_update=True)
    if found is None:
        raise NotFound(f"no transfer request {request_id}")
    request, encoded_account_id = found
    clients_service.check_version("transfer request", request.version, expected_version)
    current = TransferState(request.state)
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(state.value for state in TRANSITIONS[current])) or "none"
        raise Conflict(
            f"a {current.value} transfer request cannot become {to.value} (allowed: {allowed})"
        )
    await _move(session, request, to, actor=actor, note=note)
    log.info(
        "clients.transfer_request.changed",
        transfer_request=request.id,
        client=encoded_account_id,
        from_state=current.value,
        to_state=to.value,
        actor=actor.name,
    )
    return request, encoded_account_id


async def complete_transfer_requests_for(
    session: AsyncSession, encoded_account_id: str, actor: Actor, *, client: Client | None = None
) -> Sequence[TransferRequest]:
    """The account is in our partner list now: its open transfer requests complete themselves."""
    if client is None:
        client = await repository.by_account_id(session, encoded_account_id)
    if client is None:
        return []
    completed = list(await repository.open_transfers(session, client.id, for_update=True))
    for request in completed:
        await _move(
            session,
            request,
            TransferState.COMPLETED,
            actor=actor,
            note="the account appeared in our partner list",
        )
        log.info(
            "clients.transfer_request.completed",
            transfer_request=request.id,
            client=encoded_account_id,
            source=actor.source.value,
        )
    return completed
