"""`POST /v1/ctct/webhooks`: CTCT's partner webhooks, authenticated only by CTCT's signature."""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Request, Response

from app.ctct.webhook_signature import MAX_SIGNATURE_CHARS
from app.deps import StateDep
from app.membership import webhook_flow
from app.membership.schemas import CTCT_NOTIFICATION_REF, CtctWebhookReceipt

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
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "CTCT's notification, verified byte for byte against the signature",
            "content": {"application/json": {"schema": {"$ref": CTCT_NOTIFICATION_REF}}},
        },
        "parameters": [
            {
                "name": "X-Ctct-Signature",
                "in": "header",
                "required": True,
                "description": "CTCT's detached JWS (`<header>..<signature>`; the header's name "
                "is the WEBHOOK_CTCT_SIGNATURE_HEADER setting)",
                "schema": {"type": "string", "maxLength": MAX_SIGNATURE_CHARS},
            }
        ],
    },
)
async def receive(request: Request, response: Response, state: StateDep) -> CtctWebhookReceipt:
    signature = request.headers.get(state.settings.webhook.ctct_signature_header)
    # The signature's shape, algorithm and age are checked before the body is read, so an
    # unsigned or stale request costs no body; the body itself is bounded by BodyLimitMiddleware.
    state.ctct_keys.checked_header(signature, now=time.time())
    receipt = await webhook_flow.receive(
        state.ctct_keys,
        state.ctct,
        state.sessionmaker,
        signature=signature,
        body=await request.body(),
    )
    response.status_code = 200 if receipt.applied else 202
    return CtctWebhookReceipt(**dataclasses.asdict(receipt))
