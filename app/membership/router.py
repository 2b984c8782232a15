"""Routes that probe CTCT: registering an account the product has seen, and a forced re-check.

Their paths sit under `/v1/clients` (they return the client), but the work is a probe.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Response

from app.clients import service as clients_service
from app.clients.models import EventSource
from app.clients.schemas import AccountIdPath, ClientOut
from app.ctct.client import CtctClient
from app.deps import DeciderDep, RegistrarDep, StateDep
from app.errors import UpstreamUnavailable
from app.membership import probe as membership_probe
from app.membership.schemas import RegisterClient
from app.state import AppState

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1", tags=["clients"])


def _ctct(state: AppState) -> CtctClient:
    assert state.ctct is not None, "the lifespan builds the CTCT client"
    return state.ctct


@router.post(
    "/clients",
    response_model=ClientOut,
    status_code=201,
    responses={
        200: {"model": ClientOut, "description": "already known; probed again"},
        400: {"description": "invalid, or the access token is for another account"},
    },
    summary="Register an account the product has seen; probes CTCT",
)
async def register_client(
    body: RegisterClient, principal: RegistrarDep, state: StateDep, response: Response
) -> ClientOut:
    """Probe the account (with the user's token, used once) and return the client."""
    result = await membership_probe.probe(
        _ctct(state),
        state.sessionmaker,
        body.encoded_account_id,
        actor=clients_service.Actor(EventSource.PROBE, name=principal.name),
        user_access_token=body.access_token,
        our_partner_id=state.settings.ctct.partner_id,
    )
    if not result.created:
        response.status_code = 200
    log.info(
        f"clients.register.{'created' if result.created else 'known'}",
        client=body.encoded_account_id,
        status=result.client.status,
        answered=result.answered,
        actor=principal.name,
    )
    return ClientOut.model_validate(result.client)


@router.post(
    "/clients/{encoded_account_id}/probe",
    response_model=ClientOut,
    responses={
        404: {"description": "no client with this encoded_account_id"},
        503: {"description": "CTCT could not answer; the client is unchanged"},
    },
)
async def probe_client(
    encoded_account_id: AccountIdPath, principal: DeciderDep, state: StateDep
) -> ClientOut:
    """Re-check a known client against CTCT now; 503 (client unchanged) if CTCT cannot answer."""
    async with state.sessionmaker() as session:
        await clients_service.get(session, encoded_account_id)
    result = await membership_probe.probe(
        _ctct(state),
        state.sessionmaker,
        encoded_account_id,
        actor=clients_service.Actor(EventSource.PROBE, name=principal.name),
        our_partner_id=state.settings.ctct.partner_id,
    )
    log.info(
        f"clients.probe.{'answered' if result.answered else 'unanswered'}",
        client=encoded_account_id,
        status=result.client.status,
        actor=principal.name,
    )
    if not result.answered:
        raise UpstreamUnavailable(
            "CTCT could not answer; the client is unchanged. Try again later.",
            extra={"ctct_error": result.error},
        )
    return ClientOut.model_validate(result.client)
