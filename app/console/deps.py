"""Console dependencies: the session, who is signed in, their role, and the CSRF check.

SignInRequired     -> 303 to the sign-in page (password mode) or a 401 page (proxy mode)
CsrfRefused        -> 403: the form lacks this session's token, or came from another origin
Forbidden          -> 403: the person's role may not do this
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.console.kit import ConsoleKit, ConsoleSession
from app.errors import AppError, Forbidden
from app.people import service as people_service
from app.people.models import Role
from app.settings import ConsoleAuth
from app.state import AppState

MAX_FORM_FIELDS = 50
# A row id in a console path: out of bigint's range it is simply not found, never a 500.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class SignInRequired(AppError):
    status = 401
    type_slug = "console-sign-in-required"
    title = "Sign in required"


class CsrfRefused(Forbidden):
    type_slug = "console-csrf"
    title = "This form cannot be accepted"


def get_kit(request: Request) -> ConsoleKit:
    kit: ConsoleKit = request.app.state.console
    return kit


KitDep = Annotated[ConsoleKit, Depends(get_kit)]


async def get_state(kit: KitDep) -> AppState:
    return kit.resources()


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One transaction per page, committed before the response is sent."""
    async with state.sessionmaker() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Visitor:
    """Whoever is looking at a page: their session, and the person if they signed in."""

    session: ConsoleSession
    email: str | None = None
    role: Role | None = None

    @property
    def csrf_token(self) -> str:
        return self.session.nonce

    def may(self, role: Role) -> bool:
        return self.role is not None and self.role.allows(role)


def _proxy_email(request: Request, kit: ConsoleKit) -> str | None:
    if not kit.trusted_peer(request):
        return None
    value = request.headers.get(kit.config.proxy_header, "").strip()
    return value or None


async def get_visitor(request: Request, kit: KitDep, state: StateDep) -> Visitor:
    """The session (started if there is none) and the signed-in, enabled person, if any."""
    session = kit.read_session(request)
    if kit.config.auth is ConsoleAuth.PROXY:
        email = _proxy_email(request, kit)
        if email is not None and (session is None or session.email != email.lower()):
            session = ConsoleSession.fresh(email.lower())
            kit.queue_session(request, session)
    elif session is not None:
        email = session.email
    else:
        email = None
    if session is None:
        session = ConsoleSession.fresh()
        kit.queue_session(request, session)
    if email is None:
        return Visitor(session)
    async with state.sessionmaker() as db, db.begin():
        person = await people_service.active_person(db, email)
    if person is None:
        return Visitor(session)
    return Visitor(session, person.email, Role(person.role))


VisitorDep = Annotated[Visitor, Depends(get_visitor)]


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Visitor]]:
    """A dependency admitting signed-in people whose role allows `role`."""

    async def check(visitor: VisitorDep) -> Visitor:
        if visitor.role is None:
            raise SignInRequired("Sign in to use the console.")
        if not visitor.role.allows(role):
            raise Forbidden(f"This needs the {role.value} role; you are {visitor.role.value}.")
        return visitor

    return check


ViewerDep = Annotated[Visitor, Depends(require(Role.VIEWER))]
OperatorDep = Annotated[Visitor, Depends(require(Role.OPERATOR))]
AdminDep = Annotated[Visitor, Depends(require(Role.ADMIN))]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def checked_form(request: Request, visitor: VisitorDep) -> FormData:
    """The posted form, if it carries this session's CSRF token and came from this origin."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    token = form.get("csrf_token")
    if (
        not isinstance(token, str)
        or not hmac.compare_digest(token.encode(), visitor.csrf_token.encode())
        or not _same_origin(request)
    ):
        raise CsrfRefused(
            "The form was not sent from this console page, or the page is too old. "
            "Go back, reload the page and send it again."
        )
    return form


FormDep = Annotated[FormData, Depends(checked_form)]
