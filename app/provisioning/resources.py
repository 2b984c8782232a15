"""What provisioning's flows need at hand: built from the API's state or the worker's resources."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ctct.client import CtctClient
from app.kit.admission import Admission
from app.kit.crypto import PasswordCipher
from app.settings import Settings

# The attempt's own bound stays this far (at most) inside the lease, so a live sender never
# overruns it.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class ProvisioningResources:
    """The settings, sessions, CTCT client and password cipher one attempt or passthrough uses."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    ctct: CtctClient
    cipher: PasswordCipher
    # The creates the API process is sending itself (None in the worker: its jobs send).
    own_sends: Admission | None = None

    @property
    def lease_seconds(self) -> float:
        return self.settings.provision.lease_seconds

    @property
    def attempt_bound(self) -> float:
        """How long one attempt may take: a little less than its lease."""
        margin = min(LEASE_MARGIN_SECONDS, self.lease_seconds / 4)
        return self.lease_seconds - margin
