"""The create call's flow (`POST /v1/accounts`): store, try CTCT once, wait (bounded) for the end.

It opens its own transactions: the request and its job are committed before CTCT is called, so
the worker carries on whatever this call cannot finish.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import structlog

from app.auth.service import Principal
from app.ctct.provision_body import ProvisionBody
from app.db import utcnow
from app.provisioning import attempt_flow, service
from app.provisioning.models import TERMINAL_STATES, ProvisioningRequest, RequestState
from app.provisioning.resources import LEASE_MARGIN_SECONDS, ProvisioningResources

log = structlog.get_logger(__name__)

POLL_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class Submission:
    """The request a create call stands for, and whether the call replayed an earlier one."""

    request: ProvisioningRequest
    replayed: bool


async def submit(
    p: ProvisioningResources,
    principal: Principal,
    idempotency_key: str | None,
    body: ProvisionBody,
) -> Submission:
    """Check the key, store the (validated) body with its job, then try CTCT once right away."""
    key = service.checked_idempotency_key(idempotency_key)
    settings = p.settings.provision
    # The worker's first job waits until the API's own attempt is surely over.
    handoff = settings.wait_seconds + p.settings.ctct.timeout_seconds + LEASE_MARGIN_SECONDS
    with _own_send_place(p) as sending_here:
        async with p.sessionmaker() as session, session.begin():
            request_id, created = await service.submit(
                session,
                principal=principal,
                idempotency_key=key,
                body=body.to_ctct(),
                cipher=p.cipher,
                max_age=settings.max_age,
                first_job_at=utcnow() + timedelta(seconds=handoff if sending_here else 0),
            )
            if created and not sending_here:
                log.info("provisioning.request.to_workers", request_id=request_id)
                return Submission(await service.get(session, request_id), replayed=False)
        if created:
            request = await attempt_flow.attempt(p, request_id, max_wait=settings.wait_seconds)
            if request is not None:
                return Submission(request, replayed=False)
    return Submission(await _await_end(p, request_id), replayed=not created)


def _own_send_place(p: ProvisioningResources) -> AbstractContextManager[bool]:
    """Whether this process sends the create itself: only as many at once as the call budget
    lets through within the wait (one interval each). The rest go to the workers at once;
    counted only once they reached the budget's queue, 200 creates arriving together all found
    it empty, were claimed, refused and handed back: three transactions each, on an event loop
    that then sent its own few creates hundreds of milliseconds after their slots."""
    if p.own_sends is None:
        return nullcontext(True)
    return p.own_sends.enter(p.ctct.budget.calls_within(p.settings.provision.wait_seconds))


async def _await_end(p: ProvisioningResources, request_id: int) -> ProvisioningRequest:
    """The request once it has ended, or as it stands when the wait runs out."""
    deadline = time.monotonic() + p.settings.provision.wait_seconds
    while True:
        async with p.sessionmaker() as session:
            request = await service.get(session, request_id)
        if RequestState(request.state) in TERMINAL_STATES or time.monotonic() >= deadline:
            return request
        await asyncio.sleep(POLL_INTERVAL_SECONDS)
