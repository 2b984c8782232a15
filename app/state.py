"""What the lifespan builds once per process and the request dependencies hand out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.service import KeyVerifier
from app.kit.admission import Admission
from app.kit.pagination import CursorCodec
from app.settings import Settings

if TYPE_CHECKING:
    from app.ctct.client import CtctClient
    from app.ctct.webhook_signature import CtctKeys
    from app.kit.crypto import PasswordCipher


class AccessDecisions(Protocol):
    """The access check as its router uses it (`app.access.service.AccessService`).

    A protocol, so this module needs nothing from `app.access`, which imports it.
    """

    async def check(self, account_id: str, *, actor_name: str | None = None) -> dict[str, Any]:
        """The decision for one account, from our store."""

    async def check_encoded(self, account_id: str, *, actor_name: str | None = None) -> bytes:
        """`check` as the response's JSON bytes."""

    async def check_fresh(
        self, account_id: str, *, actor_name: str | None = None
    ) -> dict[str, Any]:
        """The decision after asking CTCT first."""

    async def check_many(
        self, account_ids: Sequence[str], *, actor_name: str | None = None
    ) -> list[dict[str, Any]]:
        """One decision per id, in order."""


@dataclass(frozen=True)
class AppState:
    """Process-wide resources, complete when built; one instance lives on `app.state.resources`."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    key_verifier: KeyVerifier
    schema_heads: tuple[str, ...]
    ctct: CtctClient
    password_cipher: PasswordCipher
    ctct_keys: CtctKeys
    cursors: CursorCodec
    access: AccessDecisions
    # The creates `POST /v1/accounts` is sending to CTCT itself (app.provisioning.submit_flow).
    own_sends: Admission = field(default_factory=Admission)
