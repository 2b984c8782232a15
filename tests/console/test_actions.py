"""Every console action does what it says and records the person's email, which the API shows."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import runner as audit_runner
from app.audit.models import AuditState, AuditTrigger
from app.auth.scopes import Scope
from app.clients.evidence import Membership
from app.clients.models import ClientStatus
from app.ctct.client import build_ctct_client
from app.db import utcnow
from app.people.models import Role
from app.provisioning.models import ProvisioningRequest
from app.sandbox.app import create_sandbox_app
from app.sandbox.state import SandboxState
from app.settings import Settings
from app.webhooks.models import WebhookDelivery, WebhookEvent
from tests.audit.conftest import put_clients
from tests.conftest import ApiKeyFactory
from tests.console.conftest import ADMIN, OPERATOR, Observe, PersonFactory, sign_in


@pytest.fixture
async def reader(api_key: ApiKeyFactory) -> dict[str, str]:
    key = await api_key(Scope.CLIENTS_READ, Scope.AUDITS_RUN, name="dashboard")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def operator(console: httpx.AsyncClient, person: PersonFactory) -> str:
    await person(OPERATOR, Role.OPERATOR)
    return await sign_in(console, OPERATOR)


async def _flash_after(console: httpx.AsyncClient, answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return (await console.get(answer.headers["location"])).text


async def test_approving_then_revoking_billing_records_the_person_on_both_events(
    console: httpx.AsyncClient, operator: str, observe: Observe, reader: dict[str, str]
) -> None:
    await observe("other1", Membership.OTHER_PARTNER, organization_name="Elsewhere")
    approved = await console.post(
        "/console/clients/other1/approve-billing",
        data={"csrf_token": operator, "note": "approved by the partner team", "version": "2"},
    )
    assert "Approved for billing." in await _flash_after(console, approved)
    revoked = await console.post(
        "/console/clients/other1/revoke-billing",
        data={"csrf_token": operator, "note": "the agreement ended"},
    )
    assert "Billing approval revoked." in await _flash_after(console, revoked)

    client = (await console.get("/v1/clients/other1", headers=reader)).json()
    assert client["status"] == "other_partner"
    assert [(e["to_status"], e["actor"], e["note"]) for e in client["events"][1:]] == [
        ("billing_approved", OPERATOR, "approved by the partner team"),
        ("other_partner", OPERATOR, "the agreement ended"),
    ]


async def test_a_transfer_request_is_filed_and_advanced_under_the_persons_name(
    console: httpx.AsyncClient, operator: str, observe: Observe, reader: dict[str, str]
) -> None:
    await observe("solo1", Membership.NO_PARTNER, organization_name="Solo Light")
    filed = await console.post(
        "/console/clients/solo1/transfer-requests",
        data={"csrf_token": operator, "note": "the owner asked to join us"},
    )
    assert "Transfer request filed." in await _flash_after(console, filed)
    listing = (await console.get("/console/transfer-requests")).text
    assert "solo1" in listing
    assert "Advance" in listing
    request_id = (await console.get("/v1/transfer-requests", headers=reader)).json()["items"][0][
        "id"
    ]
    advanced = await console.post(
        f"/console/transfer-requests/{request_id}/advance",
        data={"csrf_token": operator, "state": "submitted", "note": "sent to CTCT", "version": "1"},
    )
    assert f"Transfer request {request_id} is submitted now." in await _flash_after(
        console, advanced
    )

    detail = (await console.get("/v1/clients/solo1", headers=reader)).json()
    (request,) = detail["transfer_requests"]
    assert (request["state"], request["requested_by"]) == ("submitted", OPERATOR)
    assert [(h["to_state"], h["actor"]) for h in request["history"]] == [
        ("requested", OPERATOR),
        ("submitted", OPERATOR),
    ]
    exported = await console.get("/console/transfer-requests.csv?state=submitted")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "the owner asked to join us" in exported.text


async def test_re_checking_with_ctct_records_what_ctct_says_under_the_persons_name(
    console: httpx.AsyncClient,
    operator: str,
    observe: Observe,
    sandbox: SandboxState,
    reader: dict[str, str],
) -> None:
    sandbox.seed_account(encoded_account_id="a07e1lmoved1", login_name="moved_shop", partner="ours")
    await observe("a07e1lmoved1", Membership.OTHER_PARTNER)

    answer = await console.post(
        "/console/clients/a07e1lmoved1/recheck", data={"csrf_token": operator}
    )

    assert "CTCT answered: the client is approved." in await _flash_after(console, answer)
    last = (await console.get("/v1/clients/a07e1lmoved1", headers=reader)).json()["events"][-1]
    assert (last["to_status"], last["source"], last["actor"]) == ("approved", "probe", OPERATOR)


async def test_an_audit_started_in_the_console_names_the_person(
    console: httpx.AsyncClient, operator: str, reader: dict[str, str]
) -> None:
    answer = await console.post("/console/audits", data={"csrf_token": operator})

    page = await _flash_after(console, answer)
    run_id = int(answer.headers["location"].rsplit("/", 1)[1])
    assert f"Audit {run_id} is queued." in page
    assert 'http-equiv="refresh"' in page
    run = (await console.get(f"/v1/audits/{run_id}", headers=reader)).json()
    assert (run["state"], run["requested_by"]) == ("queued", OPERATOR)


@pytest.mark.parametrize("confirm", [True, False], ids=["confirmed", "rejected"])
async def test_held_demotions_are_resolved_with_counts_by_the_person(
    console: httpx.AsyncClient,
    operator: str,
    reader: dict[str, str],
    sandbox: SandboxState,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandboxed_settings: Settings,
    confirm: bool,
) -> None:
    listed = [a.encoded_account_id for a in sandbox.seed_accounts(6, partner="ours")]
    gone = [a.encoded_account_id for a in sandbox.seed_accounts(3, partner="other")]
    await put_clients(sessionmaker, listed + gone, ClientStatus.APPROVED)
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    async with build_ctct_client(
        sandboxed_settings.ctct, engine=engine, transport=transport
    ) as ctct:
        run = await audit_runner.run_once(
            sessionmaker, sandboxed_settings, ctct, trigger=AuditTrigger.CLI
        )
    assert run is not None
    assert run.state == AuditState.HELD.value
    page = (await console.get(f"/console/audits/{run.id}")).text
    assert "found <strong>3</strong> of <strong>9</strong> approved clients" in page
    assert "Confirm demotions" in page
    assert "Reject demotions" in page

    action = "confirm-demotions" if confirm else "reject-demotions"
    answer = await console.post(f"/console/audits/{run.id}/{action}", data={"csrf_token": operator})

    flash = await _flash_after(console, answer)
    expected = "3 clients demoted" if confirm else "nobody was demoted"
    assert expected in flash
    body = (await console.get(f"/v1/audits/{run.id}", headers=reader)).json()
    assert body["resolved_by"] == OPERATOR
    assert body["held_resolution"] == ("confirmed" if confirm else "rejected")
    demoted = (await console.get(f"/v1/clients/{gone[0]}", headers=reader)).json()
    if confirm:
        assert (demoted["status"], demoted["events"][-1]["actor"]) == ("other_partner", OPERATOR)
    else:
        assert demoted["status"] == "approved"


async def test_an_admin_retries_provisioning_and_redelivers_webhooks(
    console: httpx.AsyncClient,
    person: PersonFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await person(ADMIN, Role.ADMIN)
    token = await sign_in(console, ADMIN)
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        stuck = ProvisioningRequest(
            api_key_id=1,
            api_key_name="product",
            idempotency_key="k-1",
            fingerprint="f" * 64,
            payload={"login_name": "stuck_shop"},
            password_ciphertext="ciphertext",
            login_name="stuck_shop",
            state="needs_attention",
            attempts=4,
            deadline_at=now - timedelta(hours=1),
            last_error="CTCT answered 409 after an unknown outcome",
            finished_at=now,
        )
        event = WebhookEvent(
            event_id="msg_1",
            event_type="client.status_changed",
            payload={"type": "client.status_changed"},
        )
        failing = WebhookDelivery(
            event_id="msg_1",
            event_type="client.status_changed",
            url="https://product.example/hooks",
            payload={"type": "client.status_changed"},
            state="failed",
            attempts=12,
            last_status_code=500,
        )
        session.add_all([stuck, event])
        await session.flush()
        session.add(failing)
    provisioning = (await console.get("/console/provisioning")).text
    assert "stuck_shop" in provisioning
    assert ">Retry<" in provisioning
    assert "https://product.example/hooks" in (await console.get("/console/webhooks")).text

    retried = await console.post(
        f"/console/provisioning/{stuck.id}/retry", data={"csrf_token": token}
    )
    retried_page = await _flash_after(console, retried)
    redelivered = await console.post(
        f"/console/webhooks/{failing.id}/redeliver", data={"csrf_token": token}
    )

    assert f"Provisioning request {stuck.id} is queued again." in retried_page
    assert f"Delivery {failing.id} is queued again." in await _flash_after(console, redelivered)
    async with sessionmaker() as session:
        assert (await session.get(ProvisioningRequest, stuck.id)).state == "pending"  # type: ignore[union-attr]
        assert (await session.get(WebhookDelivery, failing.id)).state == "pending"  # type: ignore[union-attr]


async def test_the_overview_and_the_client_list_page_search_sort_and_export(
    console: httpx.AsyncClient, operator: str, observe: Observe
) -> None:
    for number in range(55):
        await observe(f"ours{number:02d}", Membership.OURS, organization_name=f"Shop {number}")
    await observe("other1", Membership.OTHER_PARTNER, organization_name="Elsewhere Outfitters")

    overview = (await console.get("/console/")).text
    assert "56 in all" in overview
    assert '<svg class="chart"' in overview
    assert "56 in the last 30 days" in overview
    first = await console.get("/console/clients", params={"sort": "encoded_account_id"})
    assert first.text.count('<a href="/console/clients/') == 50
    assert "Next page" in first.text
    next_link = first.text.split('">Next page')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    second = await console.get(next_link)
    assert second.text.count('<a href="/console/clients/') == 6
    assert "First page" in second.text
    found = await console.get("/console/clients", params={"q": "elsewhere"})
    assert found.text.count('<a href="/console/clients/') == 1
    exported = await console.get("/console/clients.csv", params={"status": "approved"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(exported.text.strip().splitlines()) == 1 + 55
