"""Provisioning's door: storing a create call, a person's retry, the list, the sweep.

Each function takes the caller's session, flushes and never commits. The flows (`submit_flow`,
`attempt_flow`) open the transactions; the router turns the requests returned into HTTP answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import Principal
from app.db import utcnow
from app.kit.crypto import PasswordCipher
from app.kit.pagination import CursorCodec, Page
from app.provisioning import reads, repository, transitions
from app.provisioning.errors import (
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    RequestNotFound,
    RetryNotPossible,
)
from app.provisioning.models import ProvisioningRequest, RequestState
from app.provisioning.repository import OutboxStats
from app.provisioning.schemas import ProvisioningRequestOut
from app.settings import ProvisionSettings

log = structlog.get_logger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7E]+")
ORPHAN_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep cleaned up, and the outbox as it left it."""

    keys_released: int
    passwords_erased: int
    outbox: OutboxStats


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
    if IDEMPOTENCY_KEY.fullmatch(value) is None:
        # Header values arrive as Latin-1; only printable ASCII is a key anyone can send again.
        raise IdempotencyKeyInvalid("The Idempotency-Key header must be printable ASCII.")
    return value


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
        await transitions.defer_send(session, request_id, at=first_job_at)
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


async def requeue(
    session: AsyncSession, request_id: int, *, max_age: timedelta, by: str | None = None
) -> ProvisioningRequest:
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
    request.deadline_at = now + max_age
    request.finished_at = None
    request.response_status = None
    request.response_body = None
    # An earlier send may have created the account: our partner list is read before any other.
    await transitions.back_to_pending(session, request, at=now, uncertain=request.may_exist)
    log.info("provisioning.request.requeued", request_id=request.id, by=by)
    return request


async def sweep(
    session: AsyncSession, *, idempotency_ttl: timedelta, settings: ProvisionSettings
) -> SweepReport:
    """Return abandoned in-flight requests, restore lost jobs (requests' and the partner-list
    reader's), release expired keys, measure."""
    await transitions.release_expired_leases(session, settings)
    await transitions.requeue_orphans(session, grace=ORPHAN_GRACE)
    await reads.restore_lost_job(session)
    released = await repository.release_idempotency_keys(session, utcnow() - idempotency_ttl)
    erased = await repository.erase_stale_passwords(session, utcnow() - settings.max_age)
    return SweepReport(
        keys_released=released,
        passwords_erased=erased,
        outbox=await repository.outbox_stats(session),
    )


async def outbox_stats(session: AsyncSession) -> OutboxStats:
    """How many requests still wait to be sent, and since when."""
    return await repository.outbox_stats(session)


async def get(session: AsyncSession, request_id: int) -> ProvisioningRequest:
    """The request, or a 404 problem."""
    request = await repository.get(session, request_id)
    if request is None:
        raise RequestNotFound(f"no provisioning request {request_id}")
    return request


async def list_requests(
    session: AsyncSession,
    cursors: CursorCodec,
    *,
    state: RequestState | None,
    cursor: str | None,
    limit: int,
) -> Page[ProvisioningRequestOut]:
    """One page of requests, newest first, optionally in one state."""
    scope = ("provisioning", state.value if state is not None else None)
    position = cursors.decode(scope, cursor)
    before_id = int(position[0]) if position else None
    rows = await repository.page(session, state=state, before_id=before_id, limit=limit + 1)
    return cursors.page(
        rows,
        limit=limit,
        scope=scope,
        position_of=lambda row: (row.id,),
        item=ProvisioningRequestOut.of,
    )
