"""The mirror keeps every listed account's site-owner name, subscriber count, last login and
billing status; the dashboard lists, filters by exact name and exports them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clients import mirror as clients_mirror
from app.sandbox.state import SandboxState
from app.settings import Settings
from tests.clients.support import assert_problem
from tests.conftest import Headers
from tests.listing import audit

LOGGED_IN = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


async def test_the_audit_mirrors_the_listed_fields_and_refreshes_them_on_the_next_run(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    reader: Headers,
) -> None:
    account = sandbox.seed_account(
        login_name="Jack_Box01", subscriber_count=350, last_login_date=LOGGED_IN
    )
    sandbox.seed_account(login_name="jill_hill02")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)

    listed = await sandboxed_client.get("/v1/clients?login_name=JACK_BOX01", headers=reader)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["encoded_account_id"] == account.encoded_account_id
    assert item["site_owner_name"] == "Jack_Box01"
    assert item["subscriber_count"] == 350
    assert item["last_login_date"] == "2026-11-20T08:30:00Z"
    assert item["billing_status"] == "Trial"

    # Already approved: the bulk confirmation refreshes the fields too.
    account.subscriber_count = 400
    sandbox.cancel(account, None, None)
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)
    again = await sandboxed_client.get(f"/v1/clients/{account.encoded_account_id}", headers=reader)
    assert again.json()["subscriber_count"] == 400
    assert again.json()["billing_status"] == "Canceled"

    export = await sandboxed_client.get(
        "/v1/clients?login_name=jack_box01", headers={**reader, "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["site_owner_name"], r["subscriber_count"], r["billing_status"]) for r in rows] == [
        ("Jack_Box01", "400", "Canceled")
    ]
    assert rows[0]["last_login_date"].startswith("2026-11-20T08:30:00")

    async with sessionmaker() as session:
        listing = await clients_mirror.last_complete_listing(session)
    assert listing is not None
    assert (listing.source, listing.accounts) == ("audit", 2)


async def test_the_login_name_filter_is_exact_and_bounded(
    sandboxed_client: httpx.AsyncClient,
    sandboxed_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sandbox: SandboxState,
    reader: Headers,
) -> None:
    sandbox.seed_account(login_name="jack_box01")
    sandbox.seed_account(login_name="jack_box011")
    await audit(sessionmaker, engine, sandboxed_settings, sandbox)

    exact = await sandboxed_client.get("/v1/clients?login_name=jack_box01", headers=reader)
    assert [i["login_name"] or i["site_owner_name"] for i in exact.json()["items"]] == [
        "jack_box01"
    ]
    nobody = await sandboxed_client.get("/v1/clients?login_name=jack_box", headers=reader)
    assert nobody.json()["items"] == []
    too_long = await sandboxed_client.get(f"/v1/clients?login_name={'x' * 201}", headers=reader)
    assert_problem(too_long, 400, "login_name")
