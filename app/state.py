"""What the lifespan builds once per process and the request dependencies hand out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.service import KeyVerifier
from app.kit.pagination import CursorCodec
from app.settings import Settings

if TYPE_CHECKING:
    from app.access.service import AccessService
    from app.ctct.client import CtctClient
    from app.events.ctct_signature import CtctKeys
    from app.provisioning.crypto import PasswordCipher


@dataclass
class AppState:
    """Process-wide resources; one instance lives on `app.state.resources`."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    key_verifier: KeyVerifier
    schema_heads: tuple[str, ...]
    cursors: CursorCodec
    ctct: CtctClient | None = None
    access: AccessService | None = None
    password_cipher: PasswordCipher | None = None
    ctct_keys: CtctKeys | None = None
    extras: dict[str, Any] = field(default_factory=dict)
