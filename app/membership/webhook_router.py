"""`POST /v1/ctct/webhooks`: CTCT's partner webhooks, authenticated only by CTCT's signature."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request, Response

from app.deps import StateDep
from app.membership import webhook_flow
from app.membership.schemas import CtctWebhookReceipt

router = APIRouter(prefix="/v1/ctct", tags=["membership"])


@router.post(
    "/webhooks",
    response_model=CtctWebhookReceipt,
    summary="Receive a CTCT partner webhook (signed by CTCT; no API key)",
    responses={
        202: {"model": CtctWebhookReceipt, "description": "accepted, nothing to apply"},
        400: {"description": "signed, but not a CTCT notification"},
        401: {"description": "not signed by CTCT (missing, stale, forged)"},
        503: {"description": "CTCT's keys or plan could not be read; CTCT retries"},
    },
)
async def receive(request: Request, response: Response, state: StateDep) -> CtctWebhookReceipt:
    header = state.settings.webhook.ctct_signature_header
    receipt = await webhook_flow.receive(
        state.ctct_keys,
        state.ctct,
        state.sessionmaker,
        signature=request.headers.get(header),
        body=await request.body(),
    )
    response.status_code = 200 if receipt.applied else 202
    return CtctWebhookReceipt(**dataclasses.asdict(receipt))
