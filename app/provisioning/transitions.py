"""How a provisioning request moves between states, one step per call.

pending -> in_flight (a claim: the next fencing token and a lease) -> succeeded | failed |
needs_attention, or back to pending (a retry, an attempt cut short, an expired lease, a person's
re-queue). An outcome is recorded only under the token of the claim that sent it (`_held`), so a
sender whose lease ran out can never overwrite what its successor did. A request whose outcome
is unknown goes back to pending with an open question (`unknown_since`) and is not claimed again
until a partner-list read that began after it answers (`reads`, `answers`).

Each function takes the caller's session, flushes and never commits; each change that needs a
job defers it in the same transaction. Leases are stamped with the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.errors import AppError
from app.kit.jobs import defer_in_transaction
from app.provisioning import outcomes, reads, repository
from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState
from app.provisioning.schemas import ProvisionedClient
from app.settings import ProvisionSettings
from app.webhooks import operations as webhooks_operations
from app.webhooks import service as webhooks_service

log = structlog.get_logger(__name__)

SEND_TASK = "provisioning.send"
QUEUE = "provisioning"
QUEUEING_LOCK_PREFIX = "provisioning-"
LEASE_EXPIRED = (
    "the sender stopped before CTCT answered (lease expired); outcome unknown, "
    "waiting for a read of our partner list before sending again"
)


@dataclass(frozen=True)
class Claim:
    """What one attempt needs, read while claiming, so no session stays open during the call."""

    request_id: int
    attempt: int
    fence: int
    payload: dict[str, Any]
    password_ciphertext: str | None
    may_exist: bool
    login_name: str
    api_key_name: str
    deadline_at: datetime


def request_attributes(
    payload: dict[str, Any], login_name: str, **reported: str | None
) -> MirroredAttributes:
    """What a request's own body says about its account, with what CTCT `reported` over it."""
    organization = payload.get("organization_name")
    email = payload.get("contact_email")
    values: dict[str, Any] = {
        "login_name": login_name,
        "organization_name": organization if isinstance(organization, str) else None,
        "contact_email": email if isinstance(email, str) else None,
    }
    values.update({name: value for name, value in reported.items() if value is not None})
    return MirroredAttributes(**values)


async def defer_send(session: AsyncSession, request_id: int, *, at: datetime) -> None:
    """Make sure a job for this request runs by `at`, in the session's transaction.

    At most one job waits per request (its queueing lock); asking again only ever brings it
    forward.
    """
    await defer_in_transaction(
        session,
        task=SEND_TASK,
        queue=QUEUE,
        queueing_lock=f"{QUEUEING_LOCK_PREFIX}{request_id}",
        schedule_at=at,
        request_id=request_id,
    )


async def next_step(session: AsyncSession, request_id: int, settings: ProvisionSettings) -> bool:
    """Whether to attempt the request now. Otherwise its job is moved to when it will be due:
    an expired lease is handed back, and a request waiting for a read makes sure one comes."""
    request = await repository.get(session, request_id, for_update=True)
    if request is None or RequestState(request.state) in TERMINAL_STATES:
        return False
    now = await repository.db_now(session)
    if request.state == RequestState.IN_FLIGHT.value:
        lease = request.lease_expires_at
        if lease is not None and lease > now:
            await defer_send(session, request_id, at=lease)
            return False
        await release_expired_leases(session, settings)
        return False
    if request.unknown_since is not None:
        await reads.request_read(session, since=request.unknown_since)
        if request.next_attempt_at <= now:
            request.next_attempt_at = outcomes.backoff_at(request.attempts, settings, now=now)
        await defer_send(session, request_id, at=request.next_attempt_at)
        return False
    if request.next_attempt_at > now:
        await defer_send(session, request_id, at=request.next_attempt_at)
        return False
    return True


async def claim(session: AsyncSession, request_id: int, *, lease_seconds: float) -> Claim | None:
    """Take a pending, due request for one attempt (in_flight, next token, a lease), or None."""
    now = await repository.db_now(session)
    request = await repository.lock_claimable(session, request_id, now)
    if request is None:
        return None
    request.state = RequestState.IN_FLIGHT.value
    request.attempts += 1
    request.fence += 1
    request.lease_expires_at = now + timedelta(seconds=lease_seconds)
    request.updated_at = now
    await session.flush()
    # A watchdog: if this sender dies mid-call, a worker takes over when the lease expires.
    await defer_send(session, request.id, at=request.lease_expires_at)
    return Claim(
        request_id=request.id,
        attempt=request.attempts,
        fence=request.fence,
        payload=dict(request.payload),
        password_ciphertext=request.password_ciphertext,
        may_exist=request.may_exist,
        login_name=request.login_name,
        api_key_name=request.api_key_name,
        deadline_at=request.deadline_at,
    )


async def _held(session: AsyncSession, claim: Claim) -> ProvisioningRequest | None:
    """The request, locked, if this claim still holds it (its token is the current one)."""
    request = await repository.get(session, claim.request_id, for_update=True)
    if request is None or request.state != RequestState.IN_FLIGHT.value:
        held = False
    else:
        held = request.fence == claim.fence
    if not held:
        log.warning(
            "provisioning.request.claim_lost", request_id=claim.request_id, fence=claim.fence
        )
        return None
    return request


async def succeed(
    session: AsyncSession,
    claim: Claim,
    *,
    encoded_account_id: str,
    provision_uuid: str | None,
    reconciled: bool,
    attributes: MirroredAttributes,
) -> ProvisioningRequest | None:
    """CTCT created the account for this claim: record it, if the claim still holds."""
    request = await _held(session, claim)
    if request is None:
        return None
    return await succeeded(
        session,
        request,
        encoded_account_id=encoded_account_id,
        provision_uuid=provision_uuid,
        reconciled=reconciled,
        attributes=attributes,
    )


async def succeeded(
    session: AsyncSession,
    request: ProvisioningRequest,
    *,
    encoded_account_id: str,
    provision_uuid: str | None,
    reconciled: bool,
    attributes: MirroredAttributes,
) -> ProvisioningRequest:
    """The account exists under our partner: approve the client and finish the (locked) request."""
    reason = "provisioning_reconciled" if reconciled else "provisioned"
    outcome = await clients_service.record_evidence(
        session,
        encoded_account_id,
        Evidence(Membership.OURS, VerifiedVia.PROVISIONING, reason=reason, attributes=attributes),
        clients_service.Actor(EventSource.PROVISIONING, name=request.api_key_name),
    )
    body = ProvisionedClient.of(outcome.client).model_dump(mode="json")
    body["provisioning_request_id"] = request.id
    request.state = RequestState.SUCCEEDED.value
    request.encoded_account_id = encoded_account_id
    request.result = {
        "encoded_account_id": encoded_account_id,
        "provision_uuid": provision_uuid,
        "reconciled": reconciled,
    }
    _end(request, await repository.db_now(session), status=201, body=body, erase_password=True)
    await session.flush()
    await webhooks_service.provisioning_finished(
        session,
        provisioning_request_id=request.id,
        state=request.state,
        encoded_account_id=encoded_account_id,
        error=None,
    )
    log.info(
        "provisioning.request.succeeded",
        request_id=request.id,
        encoded_account_id=encoded_account_id,
        reconciled=reconciled,
        attempts=request.attempts,
    )
    return request


async def finish_unsuccessfully(
    session: AsyncSession, claim: Claim, ending: outcomes.Finish
) -> ProvisioningRequest | None:
    """End the request as the ladder says, if the claim still holds."""
    request = await _held(session, claim)
    if request is None:
        return None
    return await finished(session, request, ending)


async def finished(
    session: AsyncSession, request: ProvisioningRequest, ending: outcomes.Finish
) -> ProvisioningRequest:
    """End the (locked) request as failed or needs_attention; its problem is what replays get."""
    problem: AppError = ending.problem
    request.state = ending.state.value
    request.last_error = problem.detail
    request.result = ending.result
    request.may_exist = request.may_exist or ending.may_exist
    body = problem.problem()
    body["provisioning_request_id"] = request.id
    now = await repository.db_now(session)
    _end(request, now, status=problem.status, body=body, erase_password=ending.erase_password)
    await session.flush()
    await webhooks_service.provisioning_finished(
        session,
        provisioning_request_id=request.id,
        state=request.state,
        encoded_account_id=request.encoded_account_id,
        error=problem.detail,
    )
    if ending.state is RequestState.NEEDS_ATTENTION:
        await webhooks_operations.provisioning_needs_attention(
            session,
            provisioning_request_id=request.id,
            api_key_name=request.api_key_name,
            login_name=request.login_name,
            encoded_account_id=request.encoded_account_id,
            attempts=request.attempts,
            error=problem.detail,
        )
    log.warning(
        f"provisioning.request.{ending.state.value}",
        request_id=request.id,
        attempts=request.attempts,
        problem=problem.type_slug,
    )
    return request


def _end(
    request: ProvisioningRequest,
    now: datetime,
    *,
    status: int,
    body: dict[str, Any],
    erase_password: bool,
) -> None:
    """The request ends with the answer a replay of its create call gives."""
    request.lease_expires_at = None
    request.unknown_since = None
    request.after_conflict = False
    request.finished_at = now
    request.updated_at = now
    request.response_status = status
    request.response_body = body
    if erase_password:
        request.password_ciphertext = None


async def back_to_pending(
    session: AsyncSession,
    request: ProvisioningRequest,
    *,
    at: datetime,
    uncertain: bool = False,
    after_conflict: bool = False,
    last_error: str | None = None,
) -> None:
    """The request waits for its next attempt at `at`, with a job to run it then.

    `uncertain`: the account may exist now, so nothing is sent until a partner-list read that
    begins after this moment answers (one is asked for). The last error is kept unless a new one
    is given.
    """
    now = await repository.db_now(session)
    request.state = RequestState.PENDING.value
    request.lease_expires_at = None
    if uncertain:
        request.may_exist = True
        request.unknown_since = now
        request.after_conflict = after_conflict
        await reads.request_read(session, since=now)
    if last_error is not None:
        request.last_error = last_error
    request.next_attempt_at = at
    request.updated_at = now
    await session.flush()
    await defer_send(session, request.id, at=at)


async def retry_later(
    session: AsyncSession, claim: Claim, retry: outcomes.RetryLater, *, at: datetime
) -> ProvisioningRequest | None:
    """Hand the request back to the queue with its next attempt time (and its job)."""
    request = await _held(session, claim)
    if request is None:
        return None
    if not retry.sent:
        # The claim counted an attempt; nothing went to CTCT, so the next send is still the
        # first (and is served as one, before retries).
        request.attempts -= 1
    last_error = retry.last_error
    if retry.may_exist:
        last_error += "; waiting for a read of our partner list before sending again"
    await back_to_pending(
        session,
        request,
        at=at,
        uncertain=retry.may_exist,
        after_conflict=retry.after_conflict,
        last_error=last_error,
    )
    log.info(
        "provisioning.request.retrying",
        request_id=request.id,
        attempts=request.attempts,
        outcome_unknown=retry.may_exist,
        in_seconds=round((at - request.updated_at).total_seconds(), 3),
    )
    return request


async def release_unknown(
    session: AsyncSession, claim: Claim, reason: str, settings: ProvisionSettings
) -> None:
    """An attempt stopped mid-way (shutdown, a bug): its outcome is unknown; back off."""
    request = await _held(session, claim)
    if request is None:
        return
    now = await repository.db_now(session)
    at = outcomes.backoff_at(request.attempts, settings, now=now)
    await back_to_pending(session, request, at=at, uncertain=True, last_error=reason)
    log.warning("provisioning.request.released", request_id=request.id, reason=reason)


async def release_expired_leases(session: AsyncSession, settings: ProvisionSettings) -> int:
    """Requests whose sender vanished mid-attempt go back to pending, their outcome unknown."""
    now = await repository.db_now(session)
    released = await repository.lock_expired_leases(session, now)
    for request in released:
        at = outcomes.backoff_at(request.attempts, settings, now=now)
        await back_to_pending(session, request, at=at, uncertain=True, last_error=LEASE_EXPIRED)
        log.warning("provisioning.request.lease_expired", request_id=request.id)
    return len(released)


async def requeue_orphans(session: AsyncSession, *, grace: timedelta) -> int:
    """Pending requests overdue with no job waiting for them get a job again."""
    now = await repository.db_now(session)
    orphans = await repository.due_without_job(session, now - grace, QUEUEING_LOCK_PREFIX)
    for request_id in orphans:
        await defer_send(session, request_id, at=now)
        log.warning("provisioning.request.job_restored", request_id=request_id)
    return len(orphans)
