"""The clients API end to end, with the sandbox as CTCT."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from app.clients.evidence import Membership
from app.sandbox.state import SandboxState
from tests.clients.support import assert_problem, register, seed_many, status_of
from tests.conftest import Headers, Seed
from tests.kit.paging import walk

M = Membership


# Billing approval through the API --------------------------------------------------------------


async def test_billing_approval_survives_not_ours_probes_until_the_account_becomes_ours(
    sandboxed_client: httpx.AsyncClient,
    registrar: Headers,
    decider: Headers,
    sandbox: SandboxState,
) -> None:
    account = sandbox.seed_account(partner="other")
    account_id = account.encoded_account_id
    await register(sandboxed_client, registrar, account_id)
    path = f"/v1/clients/{account_id}"

    approved = await sandboxed_client.post(
        f"{path}/billing-approval", json={"note": "signed the addendum"}, headers=decider
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "billing_approved"

    reprobe = await sandboxed_client.post(f"{path}/probe", headers=decider)
    assert reprobe.json()["status"] == "billing_approved"
    assert reprobe.json()["evidence_status"] == "other_partner"

    sandbox.move(account_id, "ours")
    ours = await sandboxed_client.post(f"{path}/probe", headers=decider)
    assert ours.json()["status"] == "approved"

    detail = (await sandboxed_client.get(path, headers=decider)).json()
    assert [(e["from_status"], e["to_status"], e["source"]) for e in detail["events"]] == [
        (None, "other_partner", "probe"),
        ("other_partner", "billing_approved", "person"),
        ("billing_approved", "approved", "probe"),
    ]
    assert detail["events"][1]["actor"] == "ops-alice"
    assert detail["events"][1]["note"] == "signed the addendum"


async def test_revocation_through_the_api_restores_the_evidence_status(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    path = "/v1/clients/acct-1/billing-approval"
    await sandboxed_client.post(path, json={"note": "ok"}, headers=decider)

    revoked = await sandboxed_client.request(
        "DELETE", path, json={"note": "contract ended"}, headers=decider
    )

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "unaffiliated"


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}, {"note": "x" * 2001}])
async def test_a_decision_without_a_note_is_400_and_changes_nothing(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed, body: dict[str, str]
) -> None:
    await seed("acct-1", M.OTHER_PARTNER)

    response = await sandboxed_client.post(
        "/v1/clients/acct-1/billing-approval", json=body, headers=decider
    )

    assert_problem(response, 400, "note")
    assert await status_of(sandboxed_client, decider, "acct-1") == "other_partner"


async def test_a_decision_on_a_wrong_status_is_409_and_changes_nothing(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.OURS)
    approve = await sandboxed_client.post(
        "/v1/clients/acct-1/billing-approval", json={"note": "x"}, headers=decider
    )
    revoke = await sandboxed_client.request(
        "DELETE", "/v1/clients/acct-1/billing-approval", json={"note": "x"}, headers=decider
    )
    assert_problem(approve, 409)
    assert_problem(revoke, 409)
    detail = (await sandboxed_client.get("/v1/clients/acct-1", headers=decider)).json()
    assert detail["status"] == "approved"
    assert len(detail["events"]) == 1


async def test_a_decision_on_a_stale_version_is_409(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.OTHER_PARTNER)
    version = (await sandboxed_client.get("/v1/clients/acct-1", headers=decider)).json()["version"]
    await seed("acct-1", M.NO_PARTNER)

    stale = await sandboxed_client.post(
        "/v1/clients/acct-1/billing-approval",
        json={"note": "x", "version": version},
        headers=decider,
    )

    assert_problem(stale, 409)
    assert stale.json()["current_version"] > version


async def test_decisions_need_the_decide_scope(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.OTHER_PARTNER)
    response = await sandboxed_client.post(
        "/v1/clients/acct-1/billing-approval", json={"note": "x"}, headers=reader
    )
    assert_problem(response, 403)
    assert_problem(await sandboxed_client.get("/v1/clients"), 401)


@pytest.mark.parametrize("bad_id", ["has%20space", "x" * 65, "bad.dot", "%C3%A9"])
async def test_malformed_ids_are_400_everywhere(
    sandboxed_client: httpx.AsyncClient, decider: Headers, bad_id: str
) -> None:
    for method, suffix in [
        ("GET", ""),
        ("POST", "/probe"),
        ("POST", "/billing-approval"),
        ("POST", "/transfer-requests"),
    ]:
        response = await sandboxed_client.request(
            method, f"/v1/clients/{bad_id}{suffix}", json={"note": "n"}, headers=decider
        )
        assert_problem(response, 400, "encoded_account_id")


# Listing, search, pagination, export ------------------------------------------------------------


@pytest.mark.parametrize(
    "sort",
    [
        "-updated_at",
        "updated_at",
        "encoded_account_id",
        "-encoded_account_id",
        "organization_name",
        "-organization_name",
        "created_at",
    ],
)
async def test_pagination_walks_every_row_exactly_once(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed, sort: str
) -> None:
    await seed_many(seed, 23)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        response = await sandboxed_client.get("/v1/clients", params=params, headers=reader)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["encoded_account_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 5
    assert sorted(seen) == [f"acct-{n:03d}" for n in range(23)]
    assert len(seen) == len(set(seen))
    if sort == "encoded_account_id":
        assert seen == sorted(seen)


@pytest.mark.parametrize(
    ("count", "limit", "pages"), [(20, 5, 4), (21, 5, 5), (3, 50, 1), (0, 5, 1)]
)
async def test_the_client_list_walks_to_its_end_without_duplicates_or_an_empty_page(
    sandboxed_client: httpx.AsyncClient,
    reader: Headers,
    seed: Seed,
    count: int,
    limit: int,
    pages: int,
) -> None:
    await seed_many(seed, count)

    walked = await walk(sandboxed_client, "/v1/clients", headers=reader, params={"limit": limit})

    seen = [item["encoded_account_id"] for page in walked for item in page]
    assert len(walked) == pages
    assert len(seen) == len(set(seen)) == count
    assert all(len(page) == limit for page in walked[:-1])


async def test_status_filter_takes_repeats_and_commas(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed_many(seed, 8)
    repeated = await sandboxed_client.get(
        "/v1/clients?status=approved&status=unaffiliated&limit=500", headers=reader
    )
    comma = await sandboxed_client.get(
        "/v1/clients", params={"status": "approved,unaffiliated"}, headers=reader
    )
    statuses = {item["status"] for item in repeated.json()["items"]}
    assert statuses == {"approved", "unaffiliated"}
    assert len(repeated.json()["items"]) == 4
    assert repeated.json()["items"] == comma.json()["items"]


async def test_search_covers_id_login_organization_email_and_escapes_wildcards(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed("acct-a", M.OURS, organization_name="100% Fresh", login_name="fresh_one")
    await seed("acct-b", M.OURS, organization_name="1000 Fresh", contact_email="B@Example.com")
    await seed("acct-c", M.OURS, login_name="freshXone")

    async def search(q: str) -> set[str]:
        response = await sandboxed_client.get("/v1/clients", params={"q": q}, headers=reader)
        assert response.status_code == 200
        return {item["encoded_account_id"] for item in response.json()["items"]}

    assert await search("100%") == {"acct-a"}
    assert await search("fresh_") == {"acct-a"}
    assert await search("b@example") == {"acct-b"}
    assert await search("ACCT-C") == {"acct-c"}
    assert await search("fresh") == {"acct-a", "acct-b", "acct-c"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=approved&status=mystery", "status"),
        ("sort=password", "sort"),
        ("sort=-", "sort"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=eyJzIjoiMSJ9", "cursor"),
        ("cursor=%F0%9F%92%A5", "cursor"),
    ],
)
async def test_bad_listing_parameters_are_400_problems(
    sandboxed_client: httpx.AsyncClient, reader: Headers, query: str, field: str
) -> None:
    response = await sandboxed_client.get(f"/v1/clients?{query}", headers=reader)
    assert_problem(response, 400, field)


async def test_a_tampered_or_foreign_cursor_is_400(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed_many(seed, 6)
    page = (await sandboxed_client.get("/v1/clients?limit=2", headers=reader)).json()
    cursor = page["next_cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]

    tampered = await sandboxed_client.get(
        "/v1/clients", params={"limit": 2, "cursor": flipped}, headers=reader
    )
    foreign = await sandboxed_client.get(
        "/v1/clients",
        params={"limit": 2, "cursor": cursor, "sort": "encoded_account_id"},
        headers=reader,
    )
    other_filter = await sandboxed_client.get(
        "/v1/clients",
        params={"limit": 2, "cursor": cursor, "status": "approved"},
        headers=reader,
    )

    assert_problem(tampered, 400, "cursor")
    assert_problem(foreign, 400, "cursor")
    assert_problem(other_filter, 400, "cursor")


async def test_csv_export_streams_the_same_filter(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed_many(seed, 12)
    await seed("acct-eq", M.OTHER_PARTNER, organization_name="=HYPERLINK(1)")

    response = await sandboxed_client.get(
        "/v1/clients",
        params={"status": "other_partner", "sort": "encoded_account_id"},
        headers={**reader, "Accept": "text/csv"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["encoded_account_id"] for row in rows] == [
        "acct-001",
        "acct-005",
        "acct-009",
        "acct-eq",
    ]
    assert {row["status"] for row in rows} == {"other_partner"}
    assert rows[1]["contact_email"] == "owner5@example.com"
    assert rows[-1]["organization_name"] == "'=HYPERLINK(1)"


async def test_csv_export_of_many_rows(
    sandboxed_client: httpx.AsyncClient, reader: Headers, seed: Seed
) -> None:
    await seed_many(seed, 60)
    response = await sandboxed_client.get("/v1/clients", headers={**reader, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 60


# One client, stats --------------------------------------------------------------------------------


async def test_client_detail_has_events_and_transfer_requests(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    await sandboxed_client.post(
        "/v1/clients/acct-1/transfer-requests", json={"note": "asked by owner"}, headers=decider
    )

    detail = (await sandboxed_client.get("/v1/clients/acct-1", headers=decider)).json()

    assert detail["status"] == "unaffiliated"
    assert len(detail["events"]) == 1
    [request] = detail["transfer_requests"]
    assert request["state"] == "requested"
    assert request["history"][0]["actor"] == "ops-alice"
    missing = await sandboxed_client.get("/v1/clients/unknown-1", headers=decider)
    assert_problem(missing, 404)


# Transfer requests --------------------------------------------------------------------------------


async def file(http: httpx.AsyncClient, headers: Headers, account_id: str) -> dict[str, object]:
    response = await http.post(
        f"/v1/clients/{account_id}/transfer-requests", json={"note": "please"}, headers=headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


async def patch(
    http: httpx.AsyncClient, headers: Headers, request_id: object, state: str, **extra: object
) -> httpx.Response:
    return await http.patch(
        f"/v1/transfer-requests/{request_id}", json={"state": state, **extra}, headers=headers
    )


@pytest.mark.parametrize("membership", [M.OURS, M.OTHER_PARTNER, M.UNKNOWN])
async def test_transfer_requests_only_for_unaffiliated_clients(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed, membership: Membership
) -> None:
    await seed("acct-1", membership)
    response = await sandboxed_client.post(
        "/v1/clients/acct-1/transfer-requests", json={"note": "x"}, headers=decider
    )
    assert_problem(response, 409)


async def test_a_transfer_request_needs_a_note_and_one_open_at_a_time(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    no_note = await sandboxed_client.post(
        "/v1/clients/acct-1/transfer-requests", json={"note": " "}, headers=decider
    )
    assert_problem(no_note, 400, "note")
    await file(sandboxed_client, decider, "acct-1")
    second = await sandboxed_client.post(
        "/v1/clients/acct-1/transfer-requests", json={"note": "again"}, headers=decider
    )
    assert_problem(second, 409)


async def test_the_transfer_workflow_and_its_history(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    request = await file(sandboxed_client, decider, "acct-1")

    submitted = await patch(sandboxed_client, decider, request["id"], "submitted", note="sent")
    rejected = await patch(sandboxed_client, decider, request["id"], "rejected")

    assert submitted.json()["state"] == "submitted"
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["closed_at"] is not None
    history = rejected.json()["history"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        (None, "requested"),
        ("requested", "submitted"),
        ("submitted", "rejected"),
    ]
    assert history[1]["note"] == "sent"
    assert {h["actor"] for h in history} == {"ops-alice"}
    # a closed request frees the client for a new one
    await file(sandboxed_client, decider, "acct-1")


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((), "completed"),
        ((), "rejected"),
        ((), "requested"),
        (("submitted",), "requested"),
        (("submitted", "completed"), "withdrawn"),
        (("withdrawn",), "submitted"),
        (("submitted", "rejected"), "completed"),
    ],
)
async def test_illegal_transfer_transitions_are_409(
    sandboxed_client: httpx.AsyncClient,
    decider: Headers,
    seed: Seed,
    path: tuple[str, ...],
    illegal: str,
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    request = await file(sandboxed_client, decider, "acct-1")
    for state in path:
        assert (await patch(sandboxed_client, decider, request["id"], state)).status_code == 200

    response = await patch(sandboxed_client, decider, request["id"], illegal)

    assert_problem(response, 409)


async def test_transfer_patch_bad_input(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    await seed("acct-1", M.NO_PARTNER)
    request = await file(sandboxed_client, decider, "acct-1")
    assert_problem(await patch(sandboxed_client, decider, request["id"], "teleported"), 400)
    assert_problem(await patch(sandboxed_client, decider, "abc", "submitted"), 400)
    assert_problem(await patch(sandboxed_client, decider, 999999, "submitted"), 404)
    stale = await patch(
        sandboxed_client, decider, request["id"], "submitted", version=request["version"] + 1
    )
    assert_problem(stale, 409)


@pytest.mark.parametrize(("count", "limit", "pages"), [(6, 3, 2), (7, 3, 3)])
async def test_the_transfer_request_list_walks_to_its_end_without_duplicates_or_an_empty_page(
    sandboxed_client: httpx.AsyncClient,
    decider: Headers,
    seed: Seed,
    count: int,
    limit: int,
    pages: int,
) -> None:
    for n in range(count):
        await seed(f"acct-{n}", M.NO_PARTNER)
        await file(sandboxed_client, decider, f"acct-{n}")

    walked = await walk(
        sandboxed_client, "/v1/transfer-requests", headers=decider, params={"limit": limit}
    )

    ids = [item["id"] for page in walked for item in page]
    assert len(walked) == pages
    assert ids == sorted(set(ids))
    assert len(ids) == count
    first = await sandboxed_client.get(
        "/v1/transfer-requests", params={"limit": 1}, headers=decider
    )
    # A transfer-request cursor is no client-list cursor.
    foreign = await sandboxed_client.get(
        "/v1/clients", params={"cursor": first.json()["next_cursor"]}, headers=decider
    )
    assert_problem(foreign, 400, "cursor")


async def test_transfer_requests_list_and_csv_export(
    sandboxed_client: httpx.AsyncClient, decider: Headers, seed: Seed
) -> None:
    for n in range(3):
        await seed(f"acct-{n}", M.NO_PARTNER, organization_name=f"Org {n}")
        await file(sandboxed_client, decider, f"acct-{n}")
    first = (await sandboxed_client.get("/v1/transfer-requests", headers=decider)).json()
    await patch(sandboxed_client, decider, first["items"][0]["id"], "withdrawn")

    open_only = await sandboxed_client.get(
        "/v1/transfer-requests?state=requested,submitted&limit=1", headers=decider
    )
    assert open_only.status_code == 200
    page = open_only.json()
    assert [item["encoded_account_id"] for item in page["items"]] == ["acct-1"]
    second_page = await sandboxed_client.get(
        "/v1/transfer-requests",
        params={"state": "requested,submitted", "limit": 1, "cursor": page["next_cursor"]},
        headers=decider,
    )
    assert [i["encoded_account_id"] for i in second_page.json()["items"]] == ["acct-2"]
    assert second_page.json()["next_cursor"] is None

    exported = await sandboxed_client.get(
        "/v1/transfer-requests?state=requested",
        headers={**decider, "Accept": "text/csv"},
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["encoded_account_id"], r["organization_name"], r["note"]) for r in rows] == [
        ("acct-1", "Org 1", "please"),
        ("acct-2", "Org 2", "please"),
    ]
    bad = await sandboxed_client.get("/v1/transfer-requests?state=lost", headers=decider)
    assert_problem(bad, 400, "state")
