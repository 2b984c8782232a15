"""The reconciliation read, a flow: page our partner list once for every request whose outcome is
unknown, with one short transaction per page and none while CTCT is called.

Each page (at `Priority.RETRY`: after access probes and first attempts, before the audit):
- is saved under the read's fencing token, which extends its lease (`reads.advance`);
- succeeds the waiting requests whose login it lists (`answers.listed`);
- refreshes the mirror of the clients it lists that we hold (site owner name, organization,
  billing status) through `clients.service.refresh_mirror`; their status is the audit's.
At the end, every request still waiting since before the read began is answered "absent". A
CTCT error pauses the read where it stands, to go on from the same page after a backoff; past
their deadline, the requests waiting end then, saying the list could not be read.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from app.clients import service as clients_service
from app.clients.evidence import listed_attributes
from app.clients.models import VerifiedVia
from app.ctct.call_meter import CallMeter, metering
from app.ctct.client import LIST_LIMIT_MAX
from app.ctct.errors import CtctBudgetExhausted, CtctError, CtctServerError
from app.ctct.priorities import Priority
from app.provisioning import answers, reads
from app.provisioning.resources import ProvisioningResources

log = structlog.get_logger(__name__)


async def run(p: ProvisioningResources) -> None:
    """The reader's job: carry the current read on, or start the queued one once it is due."""
    async with p.sessionmaker() as session, session.begin():
        step = await reads.take(
            session,
            interval=timedelta(seconds=p.settings.provision.reconcile_interval_seconds),
            lease=timedelta(seconds=p.lease_seconds),
        )
    if not isinstance(step, reads.ReadClaim):
        return
    claim = step
    with metering(CallMeter(token_path=httpx.URL(p.settings.ctct.token_url).path)) as meter:
        try:
            await _read(p, claim, meter)
        except (CtctError, TimeoutError) as exc:
            await _pause(p, claim, exc, meter.list_calls)
        except BaseException:
            await asyncio.shield(_release(p, claim, meter.list_calls))
            raise


async def _read(p: ProvisioningResources, claim: reads.ReadClaim, meter: CallMeter) -> None:
    lease = timedelta(seconds=p.lease_seconds)
    href = claim.next_href
    followed: set[str] = set()
    while True:
        # One page never outlasts the lease it is read under: no two readers overlap.
        async with asyncio.timeout(p.attempt_bound):
            page = await p.ctct.list_accounts_page(
                limit=LIST_LIMIT_MAX, next_href=href, priority=Priority.RETRY
            )
        async with p.sessionmaker() as session, session.begin():
            read = await reads.advance(
                session,
                claim,
                next_href=page.next_href,
                accounts=len(page.accounts),
                list_calls=meter.list_calls,
                lease=lease,
            )
            if read is None:
                return
            read.requests_answered += await answers.listed(
                session, read_started_at=claim.started_at, accounts=page.accounts
            )
            mirror = {
                account.encoded_account_id: listed_attributes(account) for account in page.accounts
            }
            await clients_service.refresh_mirror(session, mirror, via=VerifiedVia.PARTNER_LIST)
        if page.next_href is None:
            break
        if page.next_href in followed:
            raise CtctServerError(
                "the account list links back to a page already read", operation="list_accounts"
            )
        followed.add(page.next_href)
        href = page.next_href
    async with p.sessionmaker() as session, session.begin():
        read = await reads.complete(session, claim, list_calls=meter.list_calls)
        if read is not None:
            read.requests_answered += await answers.absent(
                session, read_started_at=claim.started_at, settings=p.settings.provision
            )


async def _pause(
    p: ProvisioningResources, claim: reads.ReadClaim, exc: CtctError | TimeoutError, calls: int
) -> None:
    error = str(exc) if isinstance(exc, CtctError) else f"no page within {p.attempt_bound:g}s"
    not_before: datetime | None = None
    if isinstance(exc, CtctBudgetExhausted):
        not_before = exc.resets_at.astimezone(UTC)
    settings = p.settings.provision
    async with p.sessionmaker() as session, session.begin():
        paused = await reads.pause(
            session,
            claim,
            error=error,
            list_calls=calls,
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.reconcile_interval_seconds,
            not_before=not_before,
        )
        if paused:
            await answers.unchecked(session, error=error, settings=settings)


async def _release(p: ProvisioningResources, claim: reads.ReadClaim, calls: int) -> None:
    async with p.sessionmaker() as session, session.begin():
        await reads.release(session, claim, list_calls=calls)
