"""Console fixtures: people, seeded clients, a signed-in HTTP client, and (for the browser
tests) the app served on loopback and Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.migrate import PROJECT_ROOT
from app.people import passwords
from app.people import service as people_service
from app.people.models import Role

PASSWORD = "correct horse battery staple"
OPERATOR = "olivia.operator@example.com"
VIEWER = "victor.viewer@example.com"
ADMIN = "ada.admin@example.com"
SCREENSHOTS = PROJECT_ROOT / ".artifacts" / "screenshots"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

PersonFactory = Callable[..., Awaitable[str]]


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests hash with argon2id at its lowest cost; production keeps the library's defaults."""
    monkeypatch.setattr(passwords, "_hasher", FAST_HASHER)


Observe = Callable[..., Awaitable[None]]


@pytest.fixture
def person(sessionmaker: async_sessionmaker[AsyncSession]) -> PersonFactory:
    """Add a person with a role (and the shared test password); return their email."""

    async def make(email: str, role: Role, *, password: str | None = PASSWORD) -> str:
        async with sessionmaker() as session, session.begin():
            added = await people_service.add_person(session, email, role, password=password)
        return added.email

    return make


@pytest.fixture
def observe(sessionmaker: async_sessionmaker[AsyncSession]) -> Observe:
    """Record one observation of CTCT about an account, as an audit would."""

    async def record(account_id: str, membership: Membership, **attributes: str) -> None:
        async with sessionmaker() as session, session.begin():
            await clients_service.record_evidence(
                session,
                account_id,
                Evidence(
                    membership,
                    VerifiedVia.PARTNER_LIST,
                    f"seen_{membership.value}",
                    MirroredAttributes(**attributes),
                ),
                clients_service.Actor(EventSource.AUDIT, name="seed"),
            )

    return record


def csrf_token(html: str) -> str:
    """The CSRF token a console page put in its forms."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found[1]


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; return the session's CSRF token."""
    page = await http.get("/console/sign-in")
    answer = await http.post(
        "/console/sign-in",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password},
    )
    assert answer.status_code == 303, answer.text
    return csrf_token((await http.get("/console/")).text)


@pytest.fixture
async def console(sandboxed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the console (no redirects followed, cookies kept)."""
    transport = httpx.ASGITransport(app=sandboxed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partnergate.test") as http:
        yield http


# Browser tests ------------------------------------------------------------------------------


def require_chromium() -> str:
    """Debian's Chromium; without it the browser tests skip, but under CI=true they fail."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (`apt-get install chromium`; `make test` tries)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_chromium()


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    """One headless Chromium for the session."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests leave their screenshots (not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
