"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scopes import Scope
from app.auth.service import Principal
from app.errors import Forbidden, Unauthorized
from app.kit.pagination import CursorCodec
from app.settings import Settings
from app.state import AppState


async def get_state(request: Request) -> AppState:
    """The process-wide resources built by the lifespan."""
    state: AppState = request.app.state.resources
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_cursors(state: StateDep) -> CursorCodec:
    """The codec that signs and checks every list's cursors."""
    return state.cursors


CursorsDep = Annotated[CursorCodec, Depends(get_cursors)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    async with state.sessionmaker() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def authenticate(state: AppState, secret: str | None) -> Principal:
    """The caller behind a valid, unrevoked API key (401 otherwise)."""
    if not secret:
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    principal = await state.key_verifier.verify(secret)
    if principal is None:
        raise Unauthorized("The API key is unknown or has been revoked.")
    return principal


def authorize(principal: Principal, scope: Scope) -> Principal:
    """The principal, if its key carries `scope` (403 otherwise)."""
    if scope.value not in principal.scopes:
        raise Forbidden(f"This API key lacks the `{scope.value}` scope.")
    return principal


async def get_principal(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await authenticate(state, credentials.credentials if credentials else None)


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits only keys carrying `scope`."""

    # The scope also lands in the operation's OpenAPI security requirement.
    principal_with_scope = Security(get_principal, scopes=[scope.value])

    async def check(principal: Principal = principal_with_scope) -> Principal:
        return authorize(principal, scope)

    return check


ProvisionerDep = Annotated[Principal, Depends(require(Scope.ACCOUNTS_PROVISION))]
AccessCheckerDep = Annotated[Principal, Depends(require(Scope.ACCESS_CHECK))]
RegistrarDep = Annotated[Principal, Depends(require(Scope.CLIENTS_REGISTER))]
ReaderDep = Annotated[Principal, Depends(require(Scope.CLIENTS_READ))]
DeciderDep = Annotated[Principal, Depends(require(Scope.CLIENTS_DECIDE))]
AuditorDep = Annotated[Principal, Depends(require(Scope.AUDITS_RUN))]
