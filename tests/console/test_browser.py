"""The console in a real browser (Playwright driving Debian's Chromium) against the app served
on loopback, with the CTCT sandbox as its upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.scopes import Scope
from app.people.models import Role
from app.sandbox.app import create_sandbox_app
from app.sandbox.partners import NO_PARTNER, OTHER, OURS
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.conftest import FAST_CTCT, ApiKeyFactory, build_settings
from tests.console.conftest import ADMIN, OPERATOR, PASSWORD, VIEWER, PersonFactory
from tests.console.live import serving

OTHER_ID = "a07e1lother1"
DECISION_LABELS = (
    "Approve for billing",
    "Revoke billing approval",
    "Re-check with CTCT",
    "File transfer request",
)


def _app(settings: Settings, sandbox: SandboxState) -> FastAPI:
    from app.main import create_app

    return create_app(settings, ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)))


@pytest.fixture
def live(sandboxed_settings: Settings, sandbox: SandboxState) -> Iterator[str]:
    """The API and console on a loopback port, CTCT being the sandbox."""
    with serving(_app(sandboxed_settings, sandbox)) as base:
        yield base


@pytest.fixture
async def registered(live: str, sandbox: SandboxState, api_key: ApiKeyFactory) -> dict[str, str]:
    """Accounts of ours, another partner's and nobody's, registered through the API."""
    accounts = {
        "a07e1lours01": ("sunrise_bakery", "Sunrise Bakery", OURS),
        "a07e1lours02": ("petal_florist", "Petal & Stem Florist", OURS),
        OTHER_ID: ("other_partner_shop", "Elsewhere Outfitters", OTHER),
        "a07e1lnopart": ("solo_photographer", "Solo Light Studio", NO_PARTNER),
    }
    key = await api_key(Scope.CLIENTS_REGISTER, Scope.CLIENTS_READ, name="product")
    async with httpx.AsyncClient(base_url=live, headers={"Authorization": f"Bearer {key}"}) as api:
        for account_id, (login, organization, partner) in accounts.items():
            sandbox.seed_account(
                encoded_account_id=account_id,
                login_name=login,
                organization_name=organization,
                partner=partner,
            )
            # As the product does when a user connects: their token tells CTCT's whole story.
            token = sandbox.mint_user_token(account_id)
            answer = await api.post(
                "/v1/clients", json={"encoded_account_id": account_id, "access_token": token}
            )
            assert answer.status_code == 201, answer.text
    return {"api_key": key}


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    await context.close()


async def _sign_in(page: Any, live: str, email: str) -> None:
    await page.goto(f"{live}/console/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live}/console/")


async def test_an_operator_finds_another_partners_client_and_approves_it_for_billing(
    live: str,
    registered: dict[str, str],
    person: PersonFactory,
    page: Any,
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    await person(OPERATOR, Role.OPERATOR)
    await _sign_in(page, live, OPERATOR)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await page.screenshot(path=screenshots / "overview.png", full_page=True)

    await page.get_by_role("link", name="Clients", exact=True).click()
    await page.get_by_label("Search").fill("Elsewhere")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("table tbody tr")
    await expect(rows).to_have_count(1)
    await rows.get_by_role("link", name=OTHER_ID).click()

    await expect(page.locator("#client-status")).to_have_text("other_partner")
    approve = page.get_by_role("form", name="Approve for billing")
    await approve.get_by_label("Note").fill("Agreed with the partner team: bill as ours")
    await approve.get_by_role("button", name="Approve for billing").click()
    await expect(page.get_by_role("status")).to_have_text("Approved for billing.")
    await expect(page.locator("#client-status")).to_have_text("billing_approved")
    await expect(page.get_by_text(f"by {OPERATOR} (person)")).to_be_visible()
    await page.screenshot(path=screenshots / "client.png", full_page=True)

    headers = {"Authorization": f"Bearer {registered['api_key']}"}
    async with httpx.AsyncClient(base_url=live, headers=headers) as api:
        client = (await api.get(f"/v1/clients/{OTHER_ID}")).json()
    assert client["status"] == "billing_approved"
    decision = client["events"][-1]
    assert decision["to_status"] == "billing_approved"
    assert decision["actor"] == OPERATOR
    assert decision["source"] == "person"
    assert decision["note"] == "Agreed with the partner team: bill as ours"


async def _client_status(live: str, api_key: str) -> str:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=live, headers=headers) as api:
        status: str = (await api.get(f"/v1/clients/{OTHER_ID}")).json()["status"]
        return status


async def test_a_viewer_sees_no_decision_buttons_and_a_forged_post_is_refused(
    live: str, registered: dict[str, str], person: PersonFactory, page: Any
) -> None:
    from playwright.async_api import expect

    await person(VIEWER, Role.VIEWER)
    await _sign_in(page, live, VIEWER)
    await page.goto(f"{live}/console/clients/{OTHER_ID}")
    await expect(page.locator("#client-status")).to_have_text("other_partner")
    for label in DECISION_LABELS:
        await expect(page.get_by_role("button", name=label)).to_have_count(0)
    await page.goto(f"{live}/console/audits")
    await expect(page.get_by_role("button", name="Start audit")).to_have_count(0)

    # The viewer's own session and CSRF token, posted by hand as a forger would.
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = await page.request.post(
        f"{live}/console/clients/{OTHER_ID}/approve-billing",
        form={"csrf_token": token, "note": "I may not do this", "version": "2"},
        max_redirects=0,
    )

    assert forged.status == 403
    assert "operator" in await forged.text()
    assert await _client_status(live, registered["api_key"]) == "other_partner"


async def test_a_form_posted_without_its_csrf_token_is_refused(
    live: str, registered: dict[str, str], person: PersonFactory, page: Any
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    await _sign_in(page, live, OPERATOR)

    missing = await page.request.post(
        f"{live}/console/clients/{OTHER_ID}/approve-billing",
        form={"note": "no token"},
        max_redirects=0,
    )
    wrong = await page.request.post(
        f"{live}/console/clients/{OTHER_ID}/approve-billing",
        form={"note": "a token of another session", "csrf_token": "x" * 32},
        max_redirects=0,
    )

    assert missing.status == 403
    assert wrong.status == 403
    assert "not sent from this console" in await missing.text()
    assert await _client_status(live, registered["api_key"]) == "other_partner"


@pytest.mark.parametrize(
    ("trusted", "signed_in"),
    [("127.0.0.0/8", True), ("10.255.0.1", False)],
    ids=["from-a-trusted-proxy", "from-an-untrusted-address"],
)
async def test_proxy_mode_trusts_the_header_only_from_a_trusted_address(
    database_url: str,
    sandbox: SandboxState,
    person: PersonFactory,
    browser: Any,
    trusted: str,
    signed_in: bool,
) -> None:
    from playwright.async_api import expect

    await person(OPERATOR, Role.OPERATOR, password=None)
    settings = build_settings(
        database_url,
        ctct=FAST_CTCT,
        console={"auth": "proxy", "trusted_proxies": [trusted]},
    )
    context = await browser.new_context(extra_http_headers={"X-Forwarded-Email": OPERATOR})
    try:
        with serving(_app(settings, sandbox)) as live:
            page = await context.new_page()
            answer = await page.goto(f"{live}/console/")
            assert answer is not None
            if signed_in:
                assert answer.status == 200
                await expect(page.get_by_text(f"{OPERATOR} · operator")).to_be_visible()
                await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            else:
                assert answer.status == 401
                await expect(page.get_by_text(OPERATOR)).to_have_count(0)
                await expect(page.get_by_role("heading", level=1)).to_have_text(
                    "Sign in through your organisation's sign-on"
                )
    finally:
        await context.close()


async def test_every_page_renders_without_a_script_or_policy_error(
    live: str,
    registered: dict[str, str],
    person: PersonFactory,
    page: Any,
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    # Chromium logs whatever the content security policy refuses (an inline style or script).
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    await person(ADMIN, Role.ADMIN)
    await _sign_in(page, live, ADMIN)
    await page.goto(f"{live}/console/clients/a07e1lnopart")
    transfer = page.get_by_role("form", name="File transfer request")
    # Blank but not empty passes the browser's own check; the server's comes back by the field.
    await transfer.get_by_label("Note").fill("   ")
    await transfer.get_by_role("button", name="File transfer request").click()
    transfer = page.get_by_role("form", name="File transfer request")
    await expect(transfer.locator("#transfer-note-error")).to_have_text("a note is required")
    await page.screenshot(path=screenshots / "client-form-error.png", full_page=True)
    await transfer.get_by_label("Note").fill("The owner asked to move under us")
    await transfer.get_by_role("button", name="File transfer request").click()
    await expect(page.get_by_role("status")).to_have_text("Transfer request filed.")
    for path, name in [
        ("/console/clients", "clients"),
        ("/console/transfer-requests", "transfer-requests"),
        ("/console/audits", "audits"),
        ("/console/provisioning", "provisioning"),
        ("/console/webhooks", "webhooks"),
        ("/console/no-such-page", "not-found"),
    ]:
        await page.goto(f"{live}{path}")
        await page.screenshot(path=screenshots / f"{name}.png", full_page=True)
    await page.goto(f"{live}/console/audits")
    await page.get_by_role("button", name="Start audit").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Audit 1")
    await page.screenshot(path=screenshots / "audit.png", full_page=True)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.screenshot(path=screenshots / "sign-in.png", full_page=True)

    # A 400 or 404 answer is logged as "Failed to load resource"; anything else is a problem.
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []
