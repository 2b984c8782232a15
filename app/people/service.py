"""People: add, list, disable, set a password, and who is behind a sign-in or a proxy header."""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.people import passwords, repository
from app.people.models import Person, Role

log = structlog.get_logger(__name__)

# Deliberately loose: the organisation's sign-on decides which addresses exist.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 254


def normalize_email(value: str) -> str:
    """The email trimmed and lowercased, or a validation problem naming `email`."""
    email = value.strip().lower()
    if len(email) > EMAIL_MAX or _EMAIL.fullmatch(email) is None:
        raise ValidationFailed([FieldError("email", "must be an email address")])
    return email


async def add_person(
    session: AsyncSession, email: str, role: Role, *, password: str | None
) -> Person:
    """Add a person (409 if the email is taken); `password` None means proxy sign-in only."""
    address = normalize_email(email)
    if await repository.by_email(session, address) is not None:
        raise Conflict(f"{address} is already a person here")
    hashed = None
    if password is not None:
        hashed = await passwords.hash_password(passwords.check_strength(password))
    try:
        async with session.begin_nested():
            person = await repository.add(
                session, Person(email=address, role=role.value, password_hash=hashed)
            )
    except IntegrityError as exc:
        raise Conflict(f"{address} is already a person here") from exc
    log.info("people.person.added", email=address, role=role.value)
    return person


async def list_people(session: AsyncSession) -> Sequence[Person]:
    """Everyone, disabled people included."""
    return await repository.everyone(session)


async def _get(session: AsyncSession, email: str) -> Person:
    person = await repository.by_email(session, normalize_email(email))
    if person is None:
        raise NotFound(f"no person {email.strip().lower()!r}")
    return person


async def disable_person(session: AsyncSession, email: str) -> Person:
    """Disable a person: their sessions stop working at their next request."""
    person = await _get(session, email)
    if person.disabled_at is None:
        person.disabled_at = utcnow()
        await session.flush()
        log.info("people.person.disabled", email=person.email)
    return person


async def set_password(session: AsyncSession, email: str, password: str) -> Person:
    """Replace a person's password."""
    person = await _get(session, email)
    person.password_hash = await passwords.hash_password(passwords.check_strength(password))
    await session.flush()
    log.info("people.password.set", email=person.email)
    return person


async def active_person(session: AsyncSession, email: str) -> Person | None:
    """The enabled person with this email, if any."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        return None
    person = await repository.by_email(session, address)
    return person if person is not None and person.active else None


async def sign_in(session: AsyncSession, email: str, password: str) -> Person | None:
    """The enabled person whose password this is, or None (without telling which part failed)."""
    person = await active_person(session, email)
    hashed = person.password_hash if person is not None else None
    if not await passwords.verify_password(hashed, password) or person is None:
        log.info("people.sign_in.refused", email=email.strip().lower()[:EMAIL_MAX])
        return None
    person.last_sign_in_at = utcnow()
    if hashed is not None and passwords.needs_rehash(hashed):
        person.password_hash = await passwords.hash_password(password)
    await session.flush()
    log.info("people.sign_in.accepted", email=person.email)
    return person
