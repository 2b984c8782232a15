"""The provisioning dependencies the routers take."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.deps import StateDep
from app.provisioning.resources import ProvisioningResources


def get_provisioning_resources(state: StateDep) -> ProvisioningResources:
    """What the flows need, from the lifespan's sessions, CTCT client and password cipher."""
    return ProvisioningResources(
        settings=state.settings,
        sessionmaker=state.sessionmaker,
        ctct=state.ctct,
        cipher=state.password_cipher,
        own_sends=state.own_sends,
    )


ProvisioningResourcesDep = Annotated[ProvisioningResources, Depends(get_provisioning_resources)]
