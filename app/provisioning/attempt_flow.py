"""The attempt flow: one send of a provisioning request to CTCT, from the API or the worker.

It opens one short transaction per step (claim, record the outcome) and holds none while CTCT
is called. A claim carries a fencing token and a lease; the whole attempt (decrypting, waiting
for the budget, the create call) runs under one deadline that ends before the lease does, and
its outcome is recorded only if the token is still the request's (see docs/provisioning.md,
"Why two sends never overlap"). An attempt whose outcome is unknown leaves the request waiting
for a shared read of our partner list (`reads`): the attempt itself never pages the list. What
CTCT's answer means is the outcome ladder's (`outcomes`) to say.
"""

from __future__ import annotations

import asyncio

import structlog

from app.ctct.errors import CtctConflict, CtctError
from app.ctct.priorities import Priority
from app.ctct.schemas import ProvisionResult
from app.db import utcnow
from app.kit.crypto import PasswordUndecryptable
from app.provisioning import outcomes, transitions
from app.provisioning.models import ProvisioningRequest
from app.provisioning.outcomes import Finish, Outcome
from app.provisioning.resources import ProvisioningResources
from app.provisioning.transitions import Claim

log = structlog.get_logger(__name__)


async def drive(p: ProvisioningResources, request_id: int) -> None:
    """The worker's job: attempt the request if it is due, else come back when it will be."""
    async with p.sessionmaker() as session, session.begin():
        due = await transitions.next_step(session, request_id, p.settings.provision)
    if due:
        await attempt(p, request_id, max_wait=p.attempt_bound / 2)


async def attempt(
    p: ProvisioningResources, request_id: int, *, max_wait: float | None
) -> ProvisioningRequest | None:
    """One attempt, if the request is pending, due, not waiting for a read and nobody else
    holds it.

    The request as the attempt left it, or None if there was nothing to attempt (or another
    sender took it over meanwhile).
    """
    loop = asyncio.get_running_loop()
    # Taken before the lease is stamped, so the attempt's deadline falls inside the lease.
    deadline = loop.time() + p.attempt_bound
    async with p.sessionmaker() as session, session.begin():
        claim = await transitions.claim(session, request_id, lease_seconds=p.lease_seconds)
    if claim is None:
        return None
    log.info(
        "provisioning.attempt.started",
        request_id=request_id,
        attempt=claim.attempt,
        fence=claim.fence,
        outcome_unknown=claim.may_exist,
    )
    try:
        result = await _send(p, claim, max_wait, deadline)
    except BaseException as exc:
        # Cancelled (shutdown) or a bug: nobody knows whether CTCT got it, so say so.
        reason = f"the attempt stopped before it finished ({type(exc).__name__}); outcome unknown"
        await asyncio.shield(_release(p, claim, reason))
        raise
    return await _record(p, claim, result)


async def _release(p: ProvisioningResources, claim: Claim, reason: str) -> None:
    async with p.sessionmaker() as session, session.begin():
        await transitions.release_unknown(session, claim, reason, p.settings.provision)


async def _send(
    p: ProvisioningResources, claim: Claim, max_wait: float | None, deadline: float
) -> ProvisionResult | Outcome:
    """The create call, bounded by the attempt's deadline; CTCT's answer or what it means."""
    if utcnow() >= claim.deadline_at:
        return outcomes.gave_up(may_exist=claim.may_exist, max_age=p.settings.provision.max_age)
    try:
        password = (
            p.cipher.decrypt(claim.password_ciphertext) if claim.password_ciphertext else None
        )
    except PasswordUndecryptable as exc:
        return outcomes.undecryptable(exc)
    body = dict(claim.payload)
    if password is not None:
        body["password"] = password
    # First attempts go before retries and reconciliation; retries never spend the reserve.
    priority = Priority.FIRST_ATTEMPT if claim.attempt == 1 else Priority.RETRY
    remaining = deadline - asyncio.get_running_loop().time()
    wait = remaining / 2 if max_wait is None else min(max_wait, remaining / 2)
    try:
        async with asyncio.timeout_at(deadline):
            return await p.ctct.create_account(body, priority=priority, max_wait=max(wait, 0.0))
    except CtctConflict as exc:
        if claim.may_exist:
            # An earlier attempt may have created it (a lost answer, a 503 processed later).
            return outcomes.conflict_after_unknown(exc, password)
        return outcomes.login_name_taken(claim.login_name, exc, password)
    except (CtctError, TimeoutError) as exc:
        return outcomes.of_failure(exc, password=password, attempt_bound=p.attempt_bound)


async def _record(
    p: ProvisioningResources, claim: Claim, result: ProvisionResult | Outcome
) -> ProvisioningRequest | None:
    """Write what the attempt learned in its own transaction (None if the claim was lost)."""
    async with p.sessionmaker() as session, session.begin():
        if isinstance(result, ProvisionResult):
            attributes = transitions.request_attributes(
                claim.payload, claim.login_name, billing_status="Trial", plan_type="TRIAL"
            )
            return await transitions.succeed(
                session,
                claim,
                encoded_account_id=result.encoded_account_id,
                provision_uuid=result.provision_uuid,
                reconciled=False,
                attributes=attributes,
            )
        if isinstance(result, Finish):
            return await transitions.finish_unsuccessfully(session, claim, result)
        at = outcomes.next_attempt_at(
            result,
            attempt=claim.attempt,
            deadline_at=claim.deadline_at,
            settings=p.settings.provision,
        )
        return await transitions.retry_later(session, claim, result, at=at)
