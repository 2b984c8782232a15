"""The provisioning dependencies the routers take."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.deps import StateDep
from app.provisioning.sender import Provisioner


def get_provisioner(state: StateDep) -> Provisioner:
    """The sender, from the lifespan's engine, CTCT client and password cipher."""
    if state.ctct is None or state.password_cipher is None:
        raise RuntimeError("the lifespan did not build the CTCT client or the password cipher")
    return Provisioner(
        settings=state.settings,
        sessionmaker=state.sessionmaker,
        ctct=state.ctct,
        cipher=state.password_cipher,
    )


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]
