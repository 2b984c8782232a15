"""Sending one provisioning request to CTCT, from the API or the worker.

This module is the edge for a multi-step unit of work: it opens one short transaction per step
(claim, record the outcome) and holds none while CTCT is called. A request is claimed with a
lease before it is sent, so the API and the workers never send it at the same time; an attempt
whose outcome is unknown marks the request `may_exist`, and the next attempt looks for the
account in our partner list before it sends anything again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.service import Principal
from app.clients.evidence import MirroredAttributes
from app.ctct.budget import Priority, next_utc_midnight
from app.ctct.client import CtctClient
from app.ctct.errors import (
    CtctAuthError,
    CtctBudgetExhausted,
    CtctBudgetTimeout,
    CtctConflict,
    CtctError,
    CtctRateLimited,
    CtctServerError,
    CtctUnavailable,
    CtctValidationError,
    ErrorDetail,
)
from app.ctct.provision_rules import PROVISION_FIELDS
from app.ctct.schemas import SiteOwner
from app.db import utcnow
from app.errors import FieldError
from app.kit.backoff import backoff_delay
from app.provisioning import repository, service
from app.provisioning.crypto import PasswordCipher, PasswordUndecryptable
from app.provisioning.errors import (
    CtctRejectedBody,
    LoginNameTaken,
    ProvisioningExpired,
    ProvisioningNeedsAttention,
)
from app.provisioning.models import TERMINAL_STATES, RequestState
from app.provisioning.service import Claim, Reply
from app.settings import Settings

log = structlog.get_logger(__name__)

POLL_INTERVAL_SECONDS = 0.1
# The attempt's own bound stays this far (at most) inside the lease, so a live sender never
# overruns it.
LEASE_MARGIN_SECONDS = 5.0
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Provisioner:
    """What sending needs: built from the API's state or the worker's resources."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    ctct: CtctClient
    cipher: PasswordCipher

    @property
    def lease_seconds(self) -> float:
        return self.settings.provision.lease_seconds

    @property
    def attempt_bound(self) -> float:
        margin = min(LEASE_MARGIN_SECONDS, self.lease_seconds / 4)
        return self.lease_seconds - margin


async def provision(
    p: Provisioner, principal: Principal, idempotency_key: str | None, body: object
) -> Reply:
    """`POST /v1/accounts`: validate, store with its job, then try CTCT once right away."""
    key = service.checked_idempotency_key(idempotency_key)
    valid = service.checked_body(body)
    settings = p.settings.provision
    # The worker's first job waits until the API's own attempt is surely over.
    handoff = settings.wait_seconds + p.settings.ctct.timeout_seconds + LEASE_MARGIN_SECONDS
    async with p.sessionmaker() as session, session.begin():
        request_id, created = await service.submit(
            session,
            principal=principal,
            idempotency_key=key,
            body=valid,
            cipher=p.cipher,
            max_age=settings.max_age,
            first_job_at=utcnow() + timedelta(seconds=handoff),
        )
    if created:
        reply = await attempt(p, request_id, max_wait=settings.wait_seconds)
        if reply is not None:
            return reply
    return await _await_outcome(p, request_id, replayed=not created)


async def _await_outcome(p: Provisioner, request_id: int, *, replayed: bool) -> Reply:
    """Wait (bounded) for the request to end; replay its answer, or 202 if it is still going."""
    deadline = time.monotonic() + p.settings.provision.wait_seconds
    while True:
        async with p.sessionmaker() as session:
            request = await service.get(session, request_id)
        terminal = RequestState(request.state) in TERMINAL_STATES
        if terminal or time.monotonic() >= deadline:
            return service.current_reply(request, replayed=replayed)
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


async def drive(p: Provisioner, request_id: int) -> None:
    """The worker's job: attempt the request if it is due, else come back when it will be."""
    async with p.sessionmaker() as session, session.begin():
        request = await repository.get(session, request_id)
        if request is None or RequestState(request.state) in TERMINAL_STATES:
            return
        now = utcnow()
        if request.state == RequestState.IN_FLIGHT.value:
            lease = request.lease_expires_at
            if lease is not None and lease > now:
                await service.defer_send(session, request_id, at=lease)
                return
            await service.release_expired_leases(session)
        elif request.next_attempt_at > now:
            await service.defer_send(session, request_id, at=request.next_attempt_at)
            return
    await attempt(p, request_id, max_wait=p.attempt_bound / 2)


async def attempt(p: Provisioner, request_id: int, *, max_wait: float | None) -> Reply | None:
    """One attempt, if the request is pending and due and nobody else holds it."""
    async with p.sessionmaker() as session, session.begin():
        claim = await service.claim(session, request_id, lease_seconds=p.lease_seconds)
    if claim is None:
        return None
    log.info(
        "provisioning.attempt.started",
        request_id=request_id,
        attempt=claim.attempt,
        outcome_unknown=claim.may_exist,
    )
    try:
        return await _attempt(p, claim, max_wait)
    except BaseException as exc:
        # Cancelled (shutdown) or a bug: nobody knows whether CTCT got it, so say so.
        reason = f"the attempt stopped before it finished ({type(exc).__name__})"
        await asyncio.shield(_release(p, claim, reason))
        raise


async def _release(p: Provisioner, claim: Claim, reason: str) -> None:
    async with p.sessionmaker() as session, session.begin():
        await service.release_unknown(session, claim, reason)


async def _attempt(p: Provisioner, claim: Claim, max_wait: float | None) -> Reply | None:
    if claim.may_exist:
        try:
            found = await _find_in_partner_list(p, claim.login_name, max_wait)
        except CtctError as exc:
            return await _retry(
                p, claim, f"could not check the partner list first: {exc}", may_exist=True
            )
        if found is not None:
            return await _succeed_reconciled(p, claim, found)
    if utcnow() >= claim.deadline_at:
        return await _give_up(p, claim)
    try:
        password = (
            p.cipher.decrypt(claim.password_ciphertext) if claim.password_ciphertext else None
        )
    except PasswordUndecryptable as exc:
        return await _finish(
            p,
            claim,
            RequestState.NEEDS_ATTENTION,
            ProvisioningNeedsAttention(
                f"{exc}; configure the retired key in PROVISION_ENCRYPTION_KEYS and retry"
            ),
            erase_password=False,
        )
    body = dict(claim.payload)
    if password is not None:
        body["password"] = password
    try:
        async with asyncio.timeout(p.attempt_bound):
            created = await p.ctct.create_account(body, max_wait=max_wait)
    except CtctConflict as exc:
        return await _conflict(p, claim, exc, max_wait, password)
    except CtctValidationError as exc:
        errors = [_field_error(detail, password) for detail in exc.errors] or [
            FieldError("body", _scrub(exc.message, password))
        ]
        return await _finish(
            p,
            claim,
            RequestState.FAILED,
            CtctRejectedBody(errors),
            result={"ctct_errors": [dict(error) for error in errors]},
            erase_password=True,
        )
    except CtctRateLimited as exc:
        not_before = next_utc_midnight(utcnow()) if exc.kind == "quota_exceeded" else None
        return await _retry(p, claim, _scrub(str(exc), password), not_before=not_before)
    except CtctBudgetExhausted as exc:
        return await _retry(p, claim, str(exc), not_before=exc.resets_at)
    except CtctBudgetTimeout as exc:
        return await _retry(p, claim, str(exc))
    except CtctUnavailable as exc:
        return await _retry(
            p, claim, _scrub(str(exc), password), may_exist=exc.request_may_have_been_processed
        )
    except TimeoutError:
        return await _retry(
            p, claim, f"no answer within {p.attempt_bound:g}s; outcome unknown", may_exist=True
        )
    except CtctServerError as exc:
        if exc.should_retry:
            return await _retry(p, claim, _scrub(str(exc), password), may_exist=True)
        return await _unexpected(p, claim, exc, password)
    except CtctAuthError as exc:
        # Our credentials were refused before anything was created; an operator must fix them.
        return await _retry(p, claim, _scrub(str(exc), password))
    except CtctError as exc:
        return await _unexpected(p, claim, exc, password)
    attributes = _attributes(claim, billing_status="Trial", plan_type="TRIAL")
    async with p.sessionmaker() as session, session.begin():
        return await service.succeed(
            session,
            claim,
            encoded_account_id=created.encoded_account_id,
            provision_uuid=created.provision_uuid,
            reconciled=False,
            attributes=attributes,
        )


async def _conflict(
    p: Provisioner,
    claim: Claim,
    exc: CtctConflict,
    max_wait: float | None,
    password: str | None,
) -> Reply | None:
    if not claim.may_exist:
        return await _finish(
            p,
            claim,
            RequestState.FAILED,
            LoginNameTaken(f"The login name {claim.login_name!r} is already taken at CTCT."),
            result={"ctct_errors": _details(exc.errors, password)},
            erase_password=True,
        )
    # An earlier attempt may have created it (a lost answer, a 503 processed later).
    try:
        found = await _find_in_partner_list(p, claim.login_name, max_wait)
    except CtctError as list_error:
        return await _retry(
            p,
            claim,
            f"CTCT answered 409 and the partner list could not be read: {list_error}",
            may_exist=True,
        )
    if found is not None:
        return await _succeed_reconciled(p, claim, found)
    return await _finish(
        p,
        claim,
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            "CTCT says the login name is taken, after an earlier attempt whose outcome is "
            "unknown, and no account with that login name is in our partner list: it may "
            "belong to someone else, or CTCT may still be creating ours. A person must check."
        ),
        result={"ctct_errors": _details(exc.errors, password)},
        erase_password=False,
    )


async def _give_up(p: Provisioner, claim: Claim) -> Reply | None:
    max_age = p.settings.provision.max_age
    if claim.may_exist:
        return await _finish(
            p,
            claim,
            RequestState.NEEDS_ATTENTION,
            ProvisioningNeedsAttention(
                f"Gave up after PROVISION_MAX_AGE ({max_age}); an earlier attempt may have "
                "reached CTCT, but the account is not in our partner list. CTCT may still "
                "create it; a person must check."
            ),
            erase_password=False,
        )
    return await _finish(
        p,
        claim,
        RequestState.FAILED,
        ProvisioningExpired(
            f"Gave up after PROVISION_MAX_AGE ({max_age}); CTCT never accepted the request, "
            "so no account was created."
        ),
        erase_password=False,
    )


async def _unexpected(
    p: Provisioner, claim: Claim, exc: CtctError, password: str | None
) -> Reply | None:
    return await _finish(
        p,
        claim,
        RequestState.NEEDS_ATTENTION,
        ProvisioningNeedsAttention(
            f"CTCT answered in a way we cannot interpret: {_scrub(str(exc), password)}"
        ),
        erase_password=False,
    )


async def _find_in_partner_list(
    p: Provisioner, login_name: str, max_wait: float | None
) -> SiteOwner | None:
    """Our account with this login name, if CTCT lists one.

    Assumes `site_owner_name` is the login name (NOTES §7 Q8: CTCT's cancel example shows a
    login-like value there; the sandbox sets it to the login name).
    """
    wanted = login_name.casefold()
    async with asyncio.timeout(p.attempt_bound):
        async for account in p.ctct.iter_accounts(priority=Priority.INTERACTIVE, max_wait=max_wait):
            if account.site_owner_name and account.site_owner_name.casefold() == wanted:
                return account
    return None


async def _succeed_reconciled(p: Provisioner, claim: Claim, found: SiteOwner) -> Reply:
    log.info(
        "provisioning.attempt.reconciled",
        request_id=claim.request_id,
        encoded_account_id=found.encoded_account_id,
    )
    attributes = _attributes(
        claim,
        billing_status=found.billing_status,
        site_owner_name=found.site_owner_name,
        organization_name=found.organization_name,
    )
    async with p.sessionmaker() as session, session.begin():
        return await service.succeed(
            session,
            claim,
            encoded_account_id=found.encoded_account_id,
            provision_uuid=None,
            reconciled=True,
            attributes=attributes,
        )


async def _retry(
    p: Provisioner,
    claim: Claim,
    last_error: str,
    *,
    may_exist: bool = False,
    not_before: datetime | None = None,
) -> Reply | None:
    settings = p.settings.provision
    delay = backoff_delay(
        claim.attempt - 1, base=settings.retry_base_seconds, cap=settings.retry_cap_seconds
    )
    next_attempt_at = utcnow() + timedelta(seconds=delay)
    if not_before is not None and not_before.astimezone(UTC) > next_attempt_at:
        next_attempt_at = not_before.astimezone(UTC)
    next_attempt_at = min(next_attempt_at, max(claim.deadline_at, utcnow()))
    async with p.sessionmaker() as session, session.begin():
        return await service.retry_later(
            session,
            claim,
            last_error=last_error,
            may_exist=may_exist,
            next_attempt_at=next_attempt_at,
        )


async def _finish(
    p: Provisioner,
    claim: Claim,
    state: RequestState,
    problem: LoginNameTaken | CtctRejectedBody | ProvisioningNeedsAttention | ProvisioningExpired,
    *,
    erase_password: bool,
    result: dict[str, object] | None = None,
) -> Reply | None:
    async with p.sessionmaker() as session, session.begin():
        return await service.finish_unsuccessfully(
            session,
            claim,
            state=state,
            problem=problem,
            last_error=problem.detail,
            result=result,
            erase_password=erase_password,
        )


def _attributes(
    claim: Claim,
    *,
    billing_status: str | None = None,
    plan_type: str | None = None,
    site_owner_name: str | None = None,
    organization_name: str | None = None,
) -> MirroredAttributes:
    payload = claim.payload
    organization = payload.get("organization_name")
    email = payload.get("contact_email")
    return MirroredAttributes(
        login_name=claim.login_name,
        site_owner_name=site_owner_name,
        organization_name=organization_name
        or (organization if isinstance(organization, str) else None),
        contact_email=email if isinstance(email, str) else None,
        billing_status=billing_status,
        plan_type=plan_type,
    )


def _scrub(text: str, password: str | None) -> str:
    """CTCT's messages echo what we sent; a password in one never gets stored or shown."""
    if password:
        return text.replace(password, REDACTED)
    return text


def _field_error(detail: ErrorDetail, password: str | None) -> FieldError:
    message = _scrub(detail.error_message, password)
    name, separator, rest = message.partition(":")
    if separator and name.strip() in PROVISION_FIELDS:
        return FieldError(name.strip(), rest.strip())
    return FieldError("body", message)


def _details(errors: tuple[ErrorDetail, ...], password: str | None) -> list[dict[str, str | None]]:
    return [
        {"error_key": error.error_key, "error_message": _scrub(error.error_message, password)}
        for error in errors
    ]
