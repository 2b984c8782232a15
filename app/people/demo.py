"""The demo operator `make run` creates, so a developer can sign in to the console at once."""

from __future__ import annotations

from app.db import create_engine, create_sessionmaker
from app.errors import Conflict
from app.people import passwords
from app.people import service as people_service
from app.people.models import Role

DEMO_OPERATOR = "demo.operator@example.com"


async def demo_operator(url: str) -> tuple[str, str]:
    """Add (or re-key) the demo operator with a fresh password; return its email and password."""
    password = passwords.new_password()
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            try:
                await people_service.add_person(
                    session, DEMO_OPERATOR, Role.OPERATOR, password=password
                )
            except Conflict:
                await people_service.set_password(session, DEMO_OPERATOR, password)
    finally:
        await engine.dispose()
    return DEMO_OPERATOR, password
