"""Probe one account: ask CTCT whose it is, then record what it said in one short transaction.

The plan endpoint is the authority on "ours": a 200 proves it; a 400 or 404 proves "not ours"
without saying whose. A user's token (used once for `/account/summary`, never stored or logged)
says which partner provisioned the account, so it tells `other_partner` from `unaffiliated`, and
it decides alone only when the plan endpoint could not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import Client, VerifiedVia
from app.clients.service import Actor
from app.ctct.client import CtctClient
from app.ctct.errors import CtctAuthError, CtctError, CtctNotFound, CtctNotOurs, CtctValidationError
from app.ctct.priorities import Priority
from app.ctct.schemas import AccountSummary, Plan
from app.errors import FieldError, ValidationFailed

log = structlog.get_logger(__name__)

REASON_PLAN_OURS = "plan_probe_ours"
REASON_PLAN_NOT_MANAGED = "plan_probe_not_managed"
REASON_PLAN_NOT_FOUND = "plan_probe_not_found"
REASON_SUMMARY_OURS = "account_summary_our_partner"
REASON_SUMMARY_OTHER = "account_summary_other_partner"
REASON_SUMMARY_NONE = "account_summary_no_partner"
REASON_CTCT_UNAVAILABLE = "ctct_unavailable"


class TokenAccountMismatch(ValidationFailed):
    """The user's token belongs to another CTCT account than the one being registered."""

    def __init__(self) -> None:
        super().__init__(
            [FieldError("access_token", "the token belongs to a different CTCT account")],
            detail="The access token is not for this encoded_account_id.",
        )


@dataclass(frozen=True)
class ProbeResult:
    """What a probe learned and what it did to the client."""

    client: Client
    membership: Membership
    created: bool
    changed: bool
    error: str | None = None

    @property
    def answered(self) -> bool:
        """Whether CTCT told us anything about membership."""
        return self.membership is not Membership.UNKNOWN


@dataclass(frozen=True)
class _PlanAnswer:
    membership: Membership
    reason: str
    plan: Plan | None = None
    error: str | None = None


async def _ask_plan(
    ctct: CtctClient, account_id: str, priority: Priority, max_wait: float | None
) -> _PlanAnswer:
    try:
        plan = await ctct.get_plan(account_id, priority=priority, max_wait=max_wait)
    except (CtctNotOurs, CtctValidationError):
        # A 400 on an account-scoped read: managed by someone else. CTCT answers the same for
        # accounts under no partner, so it does not say whose.
        return _PlanAnswer(Membership.NOT_OURS_PARTNER_UNKNOWN, REASON_PLAN_NOT_MANAGED)
    except CtctNotFound:
        return _PlanAnswer(Membership.NOT_OURS_PARTNER_UNKNOWN, REASON_PLAN_NOT_FOUND)
    except CtctError as exc:
        return _PlanAnswer(Membership.UNKNOWN, REASON_CTCT_UNAVAILABLE, error=type(exc).__name__)
    return _PlanAnswer(Membership.OURS, REASON_PLAN_OURS, plan=plan)


async def _ask_summary(
    ctct: CtctClient, account_id: str, user_access_token: str, max_wait: float | None
) -> AccountSummary | None:
    try:
        summary = await ctct.account_summary(user_access_token, max_wait=max_wait)
    except CtctAuthError:
        log.info("membership.summary.token_refused", client=account_id)
        return None
    except CtctError as exc:
        log.info("membership.summary.failed", client=account_id, error_type=type(exc).__name__)
        return None
    if summary.encoded_account_id != account_id:
        log.info("membership.summary.other_account", client=account_id)
        raise TokenAccountMismatch()
    return summary


def _summary_membership(
    summary: AccountSummary, our_partner_id: str | None
) -> tuple[Membership, str]:
    partner = summary.encoded_partner_id
    if partner is None:
        return Membership.NO_PARTNER, REASON_SUMMARY_NONE
    if our_partner_id is None:
        # Some partner provisioned it, and we do not know our own id: it may be us.
        return Membership.UNKNOWN, REASON_CTCT_UNAVAILABLE
    if partner == our_partner_id:
        return Membership.OURS, REASON_SUMMARY_OURS
    return Membership.OTHER_PARTNER, REASON_SUMMARY_OTHER


def combine(
    plan: _PlanAnswer, summary: AccountSummary | None, our_partner_id: str | None
) -> Evidence:
    """One piece of evidence from the plan answer and the (optional) account summary."""
    attributes: dict[str, Any] = {}
    if plan.plan is not None:
        attributes.update(
            {
                name: value
                for name, value in (
                    ("plan_type", plan.plan.plan_type),
                    ("billing_status", plan.plan.billing_status),
                )
                if value is not None
            }
        )
    if summary is not None:
        for name in ("organization_name", "contact_email"):
            value = getattr(summary, name)
            if value is not None:
                attributes[name] = value
        # An empty string records "CTCT says no partner provisioned it".
        attributes["encoded_partner_id"] = summary.encoded_partner_id or ""
    mirrored = MirroredAttributes(**attributes)
    if plan.membership is Membership.OURS:
        return Evidence(Membership.OURS, VerifiedVia.PLAN_PROBE, plan.reason, mirrored)
    said, reason = (
        _summary_membership(summary, our_partner_id)
        if summary is not None
        else (Membership.UNKNOWN, REASON_CTCT_UNAVAILABLE)
    )
    if plan.membership is Membership.UNKNOWN:
        via = VerifiedVia.ACCOUNT_SUMMARY if said is not Membership.UNKNOWN else None
        return Evidence(said, via, reason, mirrored)
    # The plan endpoint says "not ours"; the summary may say whose.
    if said in (Membership.NO_PARTNER, Membership.OTHER_PARTNER):
        return Evidence(said, VerifiedVia.ACCOUNT_SUMMARY, reason, mirrored)
    if said is Membership.OURS:
        log.warning("membership.probe.disagreement", plan=plan.reason, summary=reason)
    return Evidence(plan.membership, VerifiedVia.PLAN_PROBE, plan.reason, mirrored)


async def ask(
    ctct: CtctClient,
    encoded_account_id: str,
    *,
    priority: Priority = Priority.BACKGROUND,
    max_wait: float | None = None,
) -> Evidence:
    """What CTCT's plan endpoint says about an account, recorded nowhere (the caller decides)."""
    plan = await _ask_plan(ctct, encoded_account_id, priority, max_wait)
    return combine(plan, None, None)


def says_unknown_account(evidence: Evidence) -> bool:
    """Whether the evidence is CTCT saying it has no such account (a 404 from the plan)."""
    return evidence.reason == REASON_PLAN_NOT_FOUND


async def probe(
    ctct: CtctClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    encoded_account_id: str,
    *,
    actor: Actor,
    priority: Priority = Priority.INTERACTIVE,
    user_access_token: str | None = None,
    our_partner_id: str | None = None,
    max_wait: float | None = None,
) -> ProbeResult:
    """Ask CTCT (no transaction open), then record the evidence in one short transaction."""
    summary = None
    if user_access_token is not None:
        summary = await _ask_summary(ctct, encoded_account_id, user_access_token, max_wait)
    plan = await _ask_plan(ctct, encoded_account_id, priority, max_wait)
    evidence = combine(plan, summary, our_partner_id)
    answered = evidence.membership is not Membership.UNKNOWN
    async with sessionmaker() as session, session.begin():
        outcome = await clients_service.record_probe(session, encoded_account_id, evidence, actor)
    client = outcome.client
    log.info(
        f"membership.probe.{'answered' if answered else 'unanswered'}",
        client=encoded_account_id,
        membership=evidence.membership.value,
        reason=evidence.reason,
        status=client.status,
        created=outcome.created,
        changed=outcome.changed,
        with_summary=summary is not None,
        error_type=plan.error,
    )
    return ProbeResult(
        client=client,
        membership=evidence.membership,
        created=outcome.created,
        changed=outcome.changed,
        error=plan.error,
    )
