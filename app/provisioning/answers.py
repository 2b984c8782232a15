"""What a partner-list read tells the requests waiting for it (each takes the caller's session).

A request waits since `unknown_since`; only a read that began after that moment may answer it.
- `listed`: its login name is on a page: the account is ours, the request succeeds.
- `absent`: the read reached the end without it: send again, or (after a 409) a person must look,
  or (past the deadline) give up.
- `unchecked`: the list could not be read and the deadline has passed: give up now, saying so,
  rather than wait for a read that may never come.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.ctct.schemas import SiteOwner
from app.provisioning import outcomes, repository, transitions
from app.settings import ProvisionSettings

log = structlog.get_logger(__name__)

ABSENT_BATCH = 200


async def listed(
    session: AsyncSession, *, read_started_at: datetime, accounts: Sequence[SiteOwner]
) -> int:
    """Requests waiting since before the read began whose login a page lists: succeeded.

    Assumes `site_owner_name` is the login name (NOTES §7 Q8: CTCT's cancel example shows a
    login-like value there; the sandbox sets it to the login name), compared case-insensitively.
    """
    by_login = {
        account.site_owner_name.lower(): account for account in accounts if account.site_owner_name
    }
    waiting = await repository.lock_waiting_for_logins(
        session, before=read_started_at, logins=list(by_login)
    )
    for request in waiting:
        found = by_login[request.login_name.lower()]
        log.info(
            "provisioning.attempt.reconciled",
            request_id=request.id,
            encoded_account_id=found.encoded_account_id,
        )
        attributes = transitions.request_attributes(
            request.payload,
            request.login_name,
            site_owner_name=found.site_owner_name,
            organization_name=found.organization_name,
            billing_status=found.billing_status,
        )
        await transitions.succeeded(
            session,
            request,
            encoded_account_id=found.encoded_account_id,
            provision_uuid=None,
            reconciled=True,
            attributes=attributes,
        )
    return len(waiting)


async def absent(
    session: AsyncSession, *, read_started_at: datetime, settings: ProvisionSettings
) -> int:
    """Requests still waiting since before a complete read began: the list does not have them."""
    answered = 0
    after_id = 0
    while True:
        batch = await repository.lock_waiting(
            session, before=read_started_at, after_id=after_id, limit=ABSENT_BATCH
        )
        if not batch:
            return answered
        now = await repository.db_now(session)
        for request in batch:
            after_id = request.id
            answered += 1
            if request.after_conflict:
                await transitions.finished(session, request, outcomes.taken_and_not_listed())
            elif request.deadline_at <= now:
                ending = outcomes.gave_up(may_exist=True, max_age=settings.max_age)
                await transitions.finished(session, request, ending)
            else:
                # Not created: the next attempt sends it again, soon (a little jitter apart).
                request.unknown_since = None
                soon = random.uniform(1.0, 2.0) * outcomes.floor_seconds(settings)  # noqa: S311
                await transitions.back_to_pending(
                    session,
                    request,
                    at=now + timedelta(seconds=soon),
                    last_error=(
                        "an earlier attempt's outcome was unknown; the account is not in our "
                        f"partner list as read from {read_started_at.isoformat()}: sending again"
                    ),
                )


async def unchecked(session: AsyncSession, *, error: str, settings: ProvisionSettings) -> int:
    """Requests past their deadline that wait for a read while the list cannot be read: they
    end needs_attention after this last look, instead of waiting for ever."""
    now = await repository.db_now(session)
    ended = await repository.lock_waiting_past_deadline(session, now)
    for request in ended:
        ending = outcomes.gave_up_unchecked(max_age=settings.max_age, error=error)
        await transitions.finished(session, request, ending)
    return len(ended)
