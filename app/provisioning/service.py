"""Provisioning requests' state changes; each takes the caller's session, flushes, never commits."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import structlog
from procrastinate.exceptions import AlreadyEnqueued
from psycopg.pq import TransactionStatus
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import Principal
from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.ctct.provision_rules import validate_provision
from app.db import utcnow
from app.errors import AppError, BadRequest, ValidationFailed
from app.events import service as events_service
from app.provisioning import repository
from app.provisioning.crypto import PasswordCipher
from app.provisioning.errors import (
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    RequestNotFound,
    RetryNotPossible,
)
from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState
from app.provisioning.schemas import ProvisionedClient, ProvisioningPage, ProvisioningRequestOut
from app.worker import worker_app

log = structlog.get_logger(__name__)

SEND_TASK = "provisioning.send"
QUEUE = "provisioning"
QUEUEING_LOCK_PREFIX = "provisioning-"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
ACCOUNTS_PATH = "/v1/accounts"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer to a create call, as sent the first time or replayed."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """What one attempt needs, read while claiming, so no session stays open during the call."""

    request_id: int
    attempt: int
    payload: dict[str, Any]
    password_ciphertext: str | None
    may_exist: bool
    login_name: str
    api_key_name: str
    deadline_at: datetime


def location(request_id: int) -> str:
    return f"/v1/provisioning/{request_id}"


def checked_idempotency_key(value: str | None) -> str:
    """The header's value, or a 400 problem saying what is wrong with it."""
    if value is None or not value.strip():
        raise IdempotencyKeyInvalid(
            "Send an Idempotency-Key header (for example a UUID) with every create request."
        )
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise IdempotencyKeyInvalid(
            f"The Idempotency-Key header is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters."
        )
    return value


def checked_body(body: object) -> dict[str, Any]:
    """The create body if CTCT would accept it; otherwise every field error at once."""
    errors = validate_provision(body)
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(body, dict)
    return body


async def submit(
    session: AsyncSession,
    *,
    principal: Principal,
    idempotency_key: str,
    body: Mapping[str, Any],
    cipher: PasswordCipher,
    max_age: timedelta,
    first_job_at: datetime,
) -> tuple[int, bool]:
    """Store a request and its job (or find the key's earlier request): `(id, created)`."""
    fingerprints = cipher.fingerprints(body)
    password = body.get("password")
    now = utcnow()
    request_id = await repository.insert_unless_key_exists(
        session,
        {
            "api_key_id": principal.key_id,
            "api_key_name": principal.name,
            "idempotency_key": idempotency_key,
            "fingerprint": fingerprints[0],
            "payload": {name: value for name, value in body.items() if name != "password"},
            "password_ciphertext": cipher.encrypt(password) if isinstance(password, str) else None,
            "login_name": body["login_name"],
            "state": RequestState.PENDING.value,
            "attempts": 0,
            "may_exist": False,
            "next_attempt_at": now,
            "deadline_at": now + max_age,
        },
    )
    if request_id is not None:
        await defer_send(session, request_id, at=first_job_at)
        log.info("provisioning.request.accepted", request_id=request_id)
        return request_id, True
    existing = await repository.by_key(session, principal.key_id, idempotency_key)
    assert existing is not None, "the conflicting row is committed before ON CONFLICT returns"
    if existing.fingerprint not in fingerprints:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different body; "
            "use a new key for a new account.",
            extra={"provisioning_request_id": existing.id},
        )
    return existing.id, False


async def defer_send(session: AsyncSession, request_id: int, *, at: datetime) -> None:
    """Make sure a job for this request runs by `at`, in the session's transaction.

    At most one job waits per request (procrastinate's queueing lock); asking again only ever
    brings it forward.
    """
    raw = await (await session.connection()).get_raw_connection()
    connection = raw.driver_connection
    assert isinstance(connection, psycopg.AsyncConnection)
    # psycopg's transaction() on a connection already in a transaction is a savepoint; on an
    # idle one it would be a transaction of its own that commits, so refuse that case.
    if connection.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("defer_send needs the session's transaction to have begun")
    deferrer = worker_app.configure_task(
        name=SEND_TASK,
        queue=QUEUE,
        connection=connection,
        queueing_lock=f"{QUEUEING_LOCK_PREFIX}{request_id}",
        schedule_at=at,
    )
    try:
        async with connection.transaction():
            await deferrer.defer_async(request_id=request_id)
    except AlreadyEnqueued:
        # A job for this request is already waiting; it re-reads the request when it runs,
        # and must not run later than asked now.
        await repository.advance_job(session, f"{QUEUEING_LOCK_PREFIX}{request_id}", at)


async def claim(session: AsyncSession, request_id: int, *, lease_seconds: float) -> Claim | None:
    """Take a pending, due request for one attempt (in_flight with a lease), or None."""
    now = utcnow()
    request = await repository.lock_claimable(session, request_id, now)
    if request is None:
        return None
    request.state = RequestState.IN_FLIGHT.value
    request.attempts += 1
    request.lease_expires_at = now + timedelta(seconds=lease_seconds)
    request.updated_at = now
    await session.flush()
    # A watchdog: if this sender dies mid-call, a worker takes over when the lease expires.
    await defer_send(session, request.id, at=request.lease_expires_at)
    return Claim(
        request_id=request.id,
        attempt=request.attempts,
        payload=dict(request.payload),
        password_ciphertext=request.password_ciphertext,
        may_exist=request.may_exist,
        login_name=request.login_name,
        api_key_name=request.api_key_name,
        deadline_at=request.deadline_at,
    )


async def _held(session: AsyncSession, claim: Claim) -> ProvisioningRequest | None:
    """The request, locked, if this claim still holds it (nobody reclaimed it meanwhile)."""
    request = await repository.get(session, claim.request_id, for_update=True)
    if request is None or request.state != RequestState.IN_FLIGHT.value:
        return None
    if request.attempts != claim.attempt:
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
) -> Reply:
    """The account exists under our partner: approve the client and finish the request."""
    request = await repository.get(session, claim.request_id, for_update=True)
    assert request is not None
    if request.state == RequestState.SUCCEEDED.value:
        return stored_reply(request)
    reason = "provisioning_reconciled" if reconciled else "provisioned"
    outcome = await clients_service.record_evidence(
        session,
        encoded_account_id,
        Evidence(Membership.OURS, VerifiedVia.PROVISIONING, reason=reason, attributes=attributes),
        clients_service.Actor(EventSource.PROVISIONING, name=request.api_key_name),
    )
    body = ProvisionedClient.of(outcome.client).model_dump(mode="json")
    body["provisioning_request_id"] = request.id
    now = utcnow()
    request.state = RequestState.SUCCEEDED.value
    request.encoded_account_id = encoded_account_id
    request.result = {
        "encoded_account_id": encoded_account_id,
        "provision_uuid": provision_uuid,
        "reconciled": reconciled,
    }
    _finish(request, now, status=201, body=body, erase_password=True)
    await session.flush()
    await events_service.provisioning_finished(
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
    return stored_reply(request)


async def finish_unsuccessfully(
    session: AsyncSession,
    claim: Claim,
    *,
    state: RequestState,
    problem: AppError,
    last_error: str,
    result: dict[str, Any] | None = None,
    erase_password: bool,
) -> Reply | None:
    """End the request as failed or needs_attention, keeping `problem` as its replayed answer."""
    request = await _held(session, claim)
    if request is None:
        return None
    now = utcnow()
    request.state = state.value
    request.last_error = last_error
    request.result = result
    body = problem.problem(instance=ACCOUNTS_PATH)
    body["provisioning_request_id"] = request.id
    _finish(request, now, status=problem.status, body=body, erase_password=erase_password)
    await session.flush()
    await events_service.provisioning_finished(
        session,
        provisioning_request_id=request.id,
        state=request.state,
        encoded_account_id=request.encoded_account_id,
        error=last_error,
    )
    log.warning(
        f"provisioning.request.{state.value}",
        request_id=request.id,
        attempts=request.attempts,
        problem=problem.type_slug,
    )
    return stored_reply(request)


def _finish(
    request: ProvisioningRequest,
    now: datetime,
    *,
    status: int,
    body: dict[str, Any],
    erase_password: bool,
) -> None:
    request.lease_expires_at = None
    request.finished_at = now
    request.updated_at = now
    request.response_status = status
    request.response_body = body
    if erase_password:
        request.password_ciphertext = None


async def retry_later(
    session: AsyncSession,
    claim: Claim,
    *,
    last_error: str,
    may_exist: bool,
    next_attempt_at: datetime,
) -> Reply | None:
    """Hand the request back to the queue with its next attempt time (and its job)."""
    request = await _held(session, claim)
    if request is None:
        return None
    now = utcnow()
    request.state = RequestState.PENDING.value
    request.lease_expires_at = None
    request.may_exist = request.may_exist or may_exist
    request.last_error = last_error
    request.next_attempt_at = next_attempt_at
    request.updated_at = now
    await session.flush()
    await defer_send(session, request.id, at=next_attempt_at)
    log.info(
        "provisioning.request.retrying",
        request_id=request.id,
        attempts=request.attempts,
        outcome_unknown=request.may_exist,
        in_seconds=round((next_attempt_at - now).total_seconds(), 3),
    )
    return accepted_reply(request)


async def release_unknown(session: AsyncSession, claim: Claim, reason: str) -> None:
    """An attempt stopped mid-way (shutdown, a bug): back to pending, to be looked for first."""
    request = await _held(session, claim)
    if request is None:
        return
    now = utcnow()
    request.state = RequestState.PENDING.value
    request.lease_expires_at = None
    request.may_exist = True
    request.last_error = reason
    request.next_attempt_at = now
    request.updated_at = now
    await session.flush()
    await defer_send(session, request.id, at=now)
    log.warning("provisioning.request.released", request_id=request.id, reason=reason)


async def release_expired_leases(session: AsyncSession) -> int:
    """Requests whose sender vanished mid-attempt go back to pending, to be reconciled first."""
    now = utcnow()
    released = await repository.lock_expired_leases(session, now)
    for request in released:
        request.state = RequestState.PENDING.value
        request.lease_expires_at = None
        request.may_exist = True
        request.last_error = (
            "the sender stopped before CTCT answered (lease expired); "
            "the next attempt looks for the account before sending again"
        )
        request.next_attempt_at = now
        request.updated_at = now
        await session.flush()
        await defer_send(session, request.id, at=now)
        log.warning("provisioning.request.lease_expired", request_id=request.id)
    return len(released)


async def requeue_orphans(session: AsyncSession, *, grace: timedelta) -> int:
    """Pending requests overdue with no job waiting for them get a job again."""
    now = utcnow()
    orphans = await repository.due_without_job(session, now - grace, QUEUEING_LOCK_PREFIX)
    for request_id in orphans:
        await defer_send(session, request_id, at=now)
        log.warning("provisioning.request.job_restored", request_id=request_id)
    return len(orphans)


async def requeue(
    session: AsyncSession, request_id: int, *, max_age: timedelta, by: str | None = None
) -> Reply:
    """A person's retry of a failed or needs_attention request (`by`: who, for the log)."""
    request = await repository.get(session, request_id, for_update=True)
    if request is None:
        raise RequestNotFound(f"no provisioning request {request_id}")
    if request.state not in (RequestState.FAILED.value, RequestState.NEEDS_ATTENTION.value):
        raise RetryNotPossible(
            f"only failed or needs_attention requests can be retried; this one is {request.state}"
        )
    if request.password_ciphertext is None and "external_id" not in request.payload:
        raise RetryNotPossible(
            "the encrypted password was erased when the request ended, so it cannot be sent "
            "again; submit a new request (new Idempotency-Key) with the password"
        )
    now = utcnow()
    request.state = RequestState.PENDING.value
    request.next_attempt_at = now
    request.deadline_at = now + max_age
    request.finished_at = None
    request.response_status = None
    request.response_body = None
    request.updated_at = now
    await session.flush()
    await defer_send(session, request.id, at=now)
    log.info("provisioning.request.requeued", request_id=request.id, by=by)
    return accepted_reply(request)


async def get(session: AsyncSession, request_id: int) -> ProvisioningRequest:
    request = await repository.get(session, request_id)
    if request is None:
        raise RequestNotFound(f"no provisioning request {request_id}")
    return request


async def list_requests(
    session: AsyncSession, *, state: RequestState | None, cursor: str | None, limit: int
) -> ProvisioningPage:
    """One page of requests, newest first."""
    before_id = _decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, state=state, before_id=before_id, limit=limit + 1)
    items = [ProvisioningRequestOut.of(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return ProvisioningPage(items=items, next_cursor=next_cursor)


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "id":
            raise ValueError(cursor)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("the cursor is not one this API gave out") from exc


def stored_reply(request: ProvisioningRequest, *, replayed: bool = False) -> Reply:
    """The request's recorded final answer."""
    assert request.response_status is not None
    assert request.response_body is not None
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if request.response_status == 201:
        headers["Location"] = location(request.id)
    return Reply(request.response_status, dict(request.response_body), headers)


def accepted_reply(request: ProvisioningRequest, *, replayed: bool = False) -> Reply:
    """202: the request is stored and still going."""
    headers = {"Location": location(request.id)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body = ProvisioningRequestOut.of(request).model_dump(mode="json")
    return Reply(202, body, headers)


def current_reply(request: ProvisioningRequest, *, replayed: bool) -> Reply:
    """The final answer if the request has ended, else 202."""
    if RequestState(request.state) in TERMINAL_STATES and request.response_status is not None:
        return stored_reply(request, replayed=replayed)
    return accepted_reply(request, replayed=replayed)
