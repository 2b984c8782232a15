"""Console sessions: signed expiring cookies, CSRF, roles, sign-out, and the two sign-in modes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from app.clients.evidence import Membership
from app.console.kit import SESSION_COOKIE, ConsoleKit, ConsoleSession
from app.people import service as people_service
from app.people.models import Role
from app.settings import Settings
from tests.conftest import build_settings
from tests.console.conftest import (
    ADMIN,
    OPERATOR,
    VIEWER,
    Observe,
    PersonFactory,
    csrf_token,
    sign_in,
)


async def test_pages_need_a_sign_in_and_carry_a_strict_content_security_policy(
    console: httpx.AsyncClient,
) -> None:
    answer = await console.get("/console/clients?status=approved")

    assert answer.status_code == 303
    assert (
        answer.headers["location"] == "/console/sign-in?next=/console/clients%3Fstatus%3Dapproved"
    )
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Max-Age=28800" in cookie
    assert "Path=/console" in cookie
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/console/clients", "/console/clients"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/elsewhere", "/console/"),
    ],
)
async def test_signing_in_returns_to_the_page_asked_for_but_never_off_the_console(
    console: httpx.AsyncClient, person: PersonFactory, target: str, landing: str
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    page = await console.get("/console/sign-in", params={"next": target})
    answer = await console.post(
        "/console/sign-in",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "  Olivia.Operator@Example.com ",
            "password": "correct horse battery staple",
            "next": target,
        },
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == landing


async def test_signing_in_starts_a_new_session_and_signing_out_ends_it(
    console: httpx.AsyncClient, person: PersonFactory
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    anonymous = csrf_token((await console.get("/console/sign-in")).text)

    token = await sign_in(console, OPERATOR)
    assert token != anonymous
    assert (await console.get("/console/")).status_code == 200
    out = await console.post("/console/sign-out", data={"csrf_token": token})

    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    assert (await console.get("/console/")).status_code == 303
    signed_out = await console.get("/console/sign-in")
    assert "You are signed out." in signed_out.text


async def test_a_disabled_person_is_signed_out_at_their_next_request(
    console: httpx.AsyncClient,
    person: PersonFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    await sign_in(console, OPERATOR)
    async with sessionmaker() as session, session.begin():
        await people_service.disable_person(session, OPERATOR)

    assert (await console.get("/console/clients")).status_code == 303
    page = await console.get("/console/sign-in")
    again = await console.post(
        "/console/sign-in",
        data={
            "csrf_token": csrf_token(page.text),
            "email": OPERATOR,
            "password": "correct horse battery staple",
        },
    )
    assert again.status_code == 400


async def test_a_tampered_or_expired_session_cookie_counts_for_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = ConsoleKit(settings=settings, resources=lambda: None)  # type: ignore[arg-type, return-value]
    scope: dict[str, object] = {"type": "http", "headers": [], "path": "/console/"}
    request = Request(scope)
    kit.queue_session(request, ConsoleSession.fresh(OPERATOR))
    header = scope["state"]["console_cookies"][0].decode()  # type: ignore[index]
    value = header.split(";")[0].split("=", 1)[1]

    def with_cookie(cookie: str) -> Request:
        return Request({"type": "http", "headers": [(b"cookie", cookie.encode())]})

    assert kit.read_session(with_cookie(f"{SESSION_COOKIE}={value}")).email == OPERATOR  # type: ignore[union-attr]
    forged = value.replace(value.split(".")[0], value.split(".")[0][:-2] + "xx")
    assert kit.read_session(with_cookie(f"{SESSION_COOKIE}={forged}")) is None
    ttl = kit.ttl_seconds
    import itsdangerous.timed

    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() + ttl + 5)
    assert kit.read_session(with_cookie(f"{SESSION_COOKIE}={value}")) is None


async def test_a_post_from_another_origin_is_refused_even_with_the_token(
    console: httpx.AsyncClient, person: PersonFactory, observe: Observe
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    await observe("other1", Membership.OTHER_PARTNER)
    token = await sign_in(console, OPERATOR)

    answer = await console.post(
        "/console/clients/other1/approve-billing",
        data={"csrf_token": token, "note": "fine"},
        headers={"Origin": "https://evil.example"},
    )

    assert answer.status_code == 403
    assert "other_partner" in (await console.get("/console/clients/other1")).text


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        (Role.VIEWER, "/console/audits", False),
        (Role.OPERATOR, "/console/audits", True),
        (Role.OPERATOR, "/console/provisioning/1/retry", False),
        (Role.OPERATOR, "/console/webhooks/1/redeliver", False),
        (Role.ADMIN, "/console/provisioning/1/retry", True),
        (Role.ADMIN, "/console/webhooks/1/redeliver", True),
    ],
)
async def test_viewer_sees_operator_decides_admin_also_manages_provisioning_and_deliveries(
    console: httpx.AsyncClient, person: PersonFactory, role: Role, path: str, allowed: bool
) -> None:
    email = {Role.VIEWER: VIEWER, Role.OPERATOR: OPERATOR, Role.ADMIN: ADMIN}[role]
    await person(email, role)
    token = await sign_in(console, email)

    answer = await console.post(path, data={"csrf_token": token})

    # Allowed: the action runs (audit queued) or finds nothing to act on (no request 1).
    assert (answer.status_code in (303, 404)) is allowed, answer.text
    assert (answer.status_code == 403) is not allowed


def test_proxy_mode_refuses_to_start_without_a_trusted_proxy(database_url: str) -> None:
    with pytest.raises(ValidationError, match="CONSOLE_TRUSTED_PROXIES"):
        build_settings(database_url, console={"auth": "proxy"})


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[FastAPI]:
    """The app in proxy mode, trusting 10.0.0.0/24 and 192.0.2.7."""
    from app.main import create_app

    settings = build_settings(
        database_url,
        console={"auth": "proxy", "trusted_proxies": "10.0.0.0/24, 192.0.2.7"},
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def _from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://partnergate.test")


@pytest.mark.parametrize(
    ("address", "email", "status"),
    [
        ("10.0.0.9", OPERATOR, 200),
        ("192.0.2.7", OPERATOR.upper(), 200),
        ("10.0.1.9", OPERATOR, 401),
        ("127.0.0.1", OPERATOR, 401),
        ("10.0.0.9", "stranger@example.com", 401),
        ("10.0.0.9", "", 401),
    ],
)
async def test_proxy_mode_believes_the_header_only_from_a_trusted_proxy_and_a_known_person(
    proxied: FastAPI, person: PersonFactory, address: str, email: str, status: int
) -> None:
    await person(OPERATOR, Role.OPERATOR, password=None)
    async with _from(proxied, address) as http:
        answer = await http.get("/console/", headers={"X-Forwarded-Email": email})

    assert answer.status_code == status
    assert (f"{OPERATOR} · operator" in answer.text) is (status == 200)


async def test_proxy_mode_forms_still_need_the_csrf_token_and_password_sign_in_is_off(
    proxied: FastAPI, person: PersonFactory, observe: Observe
) -> None:
    await person(OPERATOR, Role.OPERATOR, password=None)
    await observe("other1", Membership.OTHER_PARTNER)
    headers = {"X-Forwarded-Email": OPERATOR}
    async with _from(proxied, "10.0.0.9") as http:
        token = csrf_token((await http.get("/console/", headers=headers)).text)
        refused = await http.post(
            "/console/clients/other1/approve-billing",
            data={"note": "no token"},
            headers=headers,
        )
        approved = await http.post(
            "/console/clients/other1/approve-billing",
            data={"note": "the partner team agreed", "csrf_token": token},
            headers=headers,
        )
        password = await http.post(
            "/console/sign-in",
            data={"csrf_token": token, "email": OPERATOR, "password": "x" * 20},
            headers=headers,
        )
        page = await http.get("/console/sign-in")

    assert refused.status_code == 403
    assert approved.status_code == 303
    assert password.status_code == 400
    assert page.status_code == 401
    assert "sign-on" in page.text
