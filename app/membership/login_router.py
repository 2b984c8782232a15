"""`GET /v1/access?login_name=…`: the access decision by login or site-owner name.

Its own route beside the by-id check (`app.access.router`), which stays the lean hot path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.deps import AccessCheckerDep, StateDep
from app.errors import FieldError, ValidationFailed
from app.kit.inputs import Text
from app.membership import login_lookup
from app.membership.schemas import LoginDecision

router = APIRouter(prefix="/v1", tags=["access"])

# Longer than CTCT's 50-character login names: site-owner names are free text.
NAME_MAX = 200


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise ValidationFailed([FieldError("login_name", "is required")])
    if len(name) > NAME_MAX:
        raise ValidationFailed([FieldError("login_name", f"must be at most {NAME_MAX} characters")])
    return name


@router.get(
    "/access",
    response_model=LoginDecision,
    summary="May the account with this login name use the integration now?",
)
async def check_access_by_login_name(
    principal: AccessCheckerDep,
    state: StateDep,
    login_name: Annotated[
        str,
        Query(
            max_length=NAME_MAX,
            description="a login or site-owner name, matched exactly (any case)",
        ),
        Text,
    ],
    consistency: Annotated[
        Literal["cached", "fresh"],
        Query(description="`fresh`: read our partner list first, within ACCESS_LIST_TIMEOUT"),
    ] = "cached",
) -> JSONResponse:
    """The same decision as by id for the matching client; for a name in none of our listings,
    `status: unknown` with the time of our last complete listing."""
    decision = await login_lookup.lookup(
        state, _name(login_name), fresh=consistency == "fresh", actor_name=principal.name
    )
    return JSONResponse(decision)
