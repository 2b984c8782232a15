"""Plan and cancellation passthrough: call CTCT (no transaction open), then mirror the result."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import structlog

from app.clients import service as clients_service
from app.clients.evidence import MirroredAttributes
from app.ctct.errors import (
    CtctBudgetExhausted,
    CtctBudgetTimeout,
    CtctError,
    CtctNotFound,
    CtctNotOurs,
    CtctValidationError,
)
from app.db import utcnow
from app.errors import FieldError, UpstreamUnavailable
from app.provisioning.errors import AccountNotOurs, AccountUnknown, CtctRejectedPlan
from app.provisioning.resources import ProvisioningResources
from app.provisioning.schemas import Cancellation, PlanChange

log = structlog.get_logger(__name__)

T = TypeVar("T")
CANCELED = "Canceled"


async def get_plan(p: ProvisioningResources, account_id: str) -> dict[str, Any]:
    """The plan as CTCT reports it; the client's mirrored plan and billing status follow."""
    plan = await _call(
        p.ctct.get_plan(account_id, max_wait=p.settings.provision.wait_seconds), account_id
    )
    await _mirror(p, account_id, plan_type=plan.plan_type, billing_status=plan.billing_status)
    return plan.model_dump(mode="json")


async def set_plan(p: ProvisioningResources, account_id: str, change: PlanChange) -> dict[str, Any]:
    """Change the plan (reactivates a canceled account with a non-TRIAL plan)."""
    plan = await _call(
        p.ctct.set_plan(
            account_id,
            change.plan_type,
            billing_day_of_month=change.billing_day_of_month,
            plan_group_id=change.plan_group_id,
            max_wait=p.settings.provision.wait_seconds,
        ),
        account_id,
    )
    await _mirror(
        p,
        account_id,
        plan_type=plan.plan_type or change.plan_type,
        billing_status=plan.billing_status,
    )
    log.info("provisioning.plan.changed", encoded_account_id=account_id, plan_type=plan.plan_type)
    return plan.model_dump(mode="json")


async def cancel(
    p: ProvisioningResources, account_id: str, cancellation: Cancellation
) -> dict[str, Any]:
    """Cancel at CTCT; the mirrored billing status becomes Canceled once it takes effect."""
    result = await _call(
        p.ctct.cancel(
            account_id,
            effective_date=cancellation.effective_date,
            reason_id=cancellation.reason_id,
            max_wait=p.settings.provision.wait_seconds,
        ),
        account_id,
    )
    effective = result.effective_date
    if effective is None or effective <= utcnow():
        await _mirror(p, account_id, billing_status=CANCELED)
    log.info("provisioning.account.canceled", encoded_account_id=account_id)
    return result.model_dump(mode="json")


async def _call(call: Awaitable[T], account_id: str) -> T:
    try:
        return await call
    except CtctNotFound as exc:
        raise AccountUnknown(f"CTCT has no account {account_id!r} under our partner") from exc
    except CtctNotOurs as exc:
        raise AccountNotOurs(
            f"account {account_id!r} belongs to another partner; only our own can be changed"
        ) from exc
    except CtctValidationError as exc:
        errors = [FieldError(e.error_key or "body", e.error_message) for e in exc.errors]
        raise CtctRejectedPlan(exc.message, extra={"errors": errors}) from exc
    except (CtctBudgetExhausted, CtctBudgetTimeout) as exc:
        raise UpstreamUnavailable(f"our CTCT call budget is spent for now: {exc}") from exc
    except CtctError as exc:
        raise UpstreamUnavailable(f"CTCT could not answer: {exc}") from exc


async def _mirror(
    p: ProvisioningResources,
    account_id: str,
    *,
    plan_type: str | None = None,
    billing_status: str | None = None,
) -> None:
    attributes = MirroredAttributes(plan_type=plan_type, billing_status=billing_status)
    async with p.sessionmaker() as session, session.begin():
        await clients_service.mirror_attributes(session, account_id, attributes)
