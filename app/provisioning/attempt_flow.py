"""The attempt flow: one send of a provisioning request to CTCT, from the API or the worker.

It opens one short transaction per step (claim, record the outcome) and holds none while CTCT
is called. A request is claimed with a lease before it is sent, so the API and the workers
never send it at the same time; an attempt whose outcome is unknown marks the request
`may_exist`, and the next attempt looks for the account in our partner list before it sends
anything again. What CTCT's answer means is the outcome ladder's (`outcomes`) to say.
"""

from __future__ import annotations

import asyncio

import structlog

from app.clients.evidence import MirroredAttributes
from app.ctct.errors import CtctConflict, CtctError
from app.ctct.priorities import Priority
from app.ctct.schemas import SiteOwner
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
        due = await transitions.due_for_attempt(session, request_id)
    if due:
        await attempt(p, request_id, max_wait=p.attempt_bound / 2)


async def attempt(
    p: ProvisioningResources, request_id: int, *, max_wait: float | None
) -> ProvisioningRequest | None:
    """One attempt, if the request is pending and due and nobody else holds it.

    The request as the attempt left it, or None if there was nothing to attempt (or another
    sender took it over meanwhile).
    """
    async with p.sessionmaker() as session, session.begin():
        claim = await transitions.claim(session, request_id, lease_seconds=p.lease_seconds)
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


async def _release(p: ProvisioningResources, claim: Claim, reason: str) -> None:
    async with p.sessionmaker() as session, session.begin():
        await transitions.release_unknown(session, claim, reason)


async def _attempt(
    p: ProvisioningResources, claim: Claim, max_wait: float | None
) -> ProvisioningRequest | None:
    if claim.may_exist:
        try:
            found = await _find_in_partner_list(p, claim.login_name, max_wait)
        except CtctError as exc:
            return await _record(
                p, claim, outcomes.partner_list_unreadable(exc, after_conflict=False)
            )
        if found is not None:
            return await _succeed_reconciled(p, claim, found)
    if utcnow() >= claim.deadline_at:
        gave_up = outcomes.gave_up(may_exist=claim.may_exist, max_age=p.settings.provision.max_age)
        return await _record(p, claim, gave_up)
    try:
        password = (
            p.cipher.decrypt(claim.password_ciphertext) if claim.password_ciphertext else None
        )
    except PasswordUndecryptable as exc:
        return await _record(p, claim, outcomes.undecryptable(exc))
    body = dict(claim.payload)
    if password is not None:
        body["password"] = password
    try:
        async with asyncio.timeout(p.attempt_bound):
            created = await p.ctct.create_account(body, max_wait=max_wait)
    except CtctConflict as exc:
        return await _conflict(p, claim, exc, max_wait, password)
    except (CtctError, TimeoutError) as exc:
        outcome = outcomes.of_failure(exc, password=password, attempt_bound=p.attempt_bound)
        return await _record(p, claim, outcome)
    attributes = _attributes(claim, billing_status="Trial", plan_type="TRIAL")
    async with p.sessionmaker() as session, session.begin():
        return await transitions.succeed(
            session,
            claim,
            encoded_account_id=created.encoded_account_id,
            provision_uuid=created.provision_uuid,
            reconciled=False,
            attributes=attributes,
        )


async def _conflict(
    p: ProvisioningResources,
    claim: Claim,
    exc: CtctConflict,
    max_wait: float | None,
    password: str | None,
) -> ProvisioningRequest | None:
    if not claim.may_exist:
        return await _record(p, claim, outcomes.login_name_taken(claim.login_name, exc, password))
    # An earlier attempt may have created it (a lost answer, a 503 processed later).
    try:
        found = await _find_in_partner_list(p, claim.login_name, max_wait)
    except CtctError as list_error:
        unreadable = outcomes.partner_list_unreadable(list_error, after_conflict=True)
        return await _record(p, claim, unreadable)
    if found is not None:
        return await _succeed_reconciled(p, claim, found)
    return await _record(p, claim, outcomes.taken_and_not_listed(exc, password))


async def _find_in_partner_list(
    p: ProvisioningResources, login_name: str, max_wait: float | None
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


async def _succeed_reconciled(
    p: ProvisioningResources, claim: Claim, found: SiteOwner
) -> ProvisioningRequest:
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
        return await transitions.succeed(
            session,
            claim,
            encoded_account_id=found.encoded_account_id,
            provision_uuid=None,
            reconciled=True,
            attributes=attributes,
        )


async def _record(
    p: ProvisioningResources, claim: Claim, outcome: Outcome
) -> ProvisioningRequest | None:
    """Write the ladder's outcome in its own transaction (None if the claim was lost)."""
    if isinstance(outcome, Finish):
        async with p.sessionmaker() as session, session.begin():
            return await transitions.finish_unsuccessfully(
                session,
                claim,
                state=outcome.state,
                problem=outcome.problem,
                result=outcome.result,
                erase_password=outcome.erase_password,
            )
    next_attempt_at = outcomes.next_attempt_at(
        outcome,
        attempt=claim.attempt,
        deadline_at=claim.deadline_at,
        settings=p.settings.provision,
    )
    async with p.sessionmaker() as session, session.begin():
        return await transitions.retry_later(
            session,
            claim,
            last_error=outcome.last_error,
            may_exist=outcome.may_exist,
            next_attempt_at=next_attempt_at,
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
