"""Bad input to every console form gets the page back with the error beside its field (or the
reason the action cannot be done), and never a 500."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clients import service as clients_service
from app.clients import transfers as clients_transfers
from app.clients.evidence import Membership
from app.clients.models import EventSource
from app.people.models import Role
from tests.console.conftest import ADMIN, OPERATOR, Observe, PersonFactory, csrf_token, sign_in

TOO_LONG = "n" * 2001
HUGE = str(2**70)


@pytest.fixture
async def token(
    console: httpx.AsyncClient,
    person: PersonFactory,
    observe: Observe,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> str:
    """An admin signed in; an other_partner, an unaffiliated (with an open transfer request)
    and an approved client."""
    await person(ADMIN, Role.ADMIN)
    await observe("other1", Membership.OTHER_PARTNER)
    await observe("solo1", Membership.NO_PARTNER)
    await observe("ours1", Membership.OURS)
    async with sessionmaker() as session, session.begin():
        await clients_transfers.file_transfer_request(
            session,
            "solo1",
            note="asked",
            actor=clients_service.Actor(EventSource.PERSON, name=OPERATOR),
        )
    return await sign_in(console, ADMIN)


async def test_sign_in_with_bad_input_shows_each_error_beside_its_field(
    console: httpx.AsyncClient, person: PersonFactory
) -> None:
    await person(OPERATOR, Role.OPERATOR)
    token = csrf_token((await console.get("/console/sign-in")).text)

    empty = await console.post("/console/sign-in", data={"csrf_token": token})
    wrong = await console.post(
        "/console/sign-in",
        data={"csrf_token": token, "email": OPERATOR, "password": "not the password"},
    )
    long = await console.post(
        "/console/sign-in",
        data={"csrf_token": token, "email": "x" * 300, "password": "p" * 2000},
    )

    assert empty.status_code == 400
    assert 'id="email-error"' in empty.text
    assert 'id="password-error"' in empty.text
    assert 'aria-invalid="true" aria-describedby="email-error"' in empty.text
    assert wrong.status_code == 400
    assert "The email or the password is wrong" in wrong.text
    assert f'value="{OPERATOR}"' in wrong.text
    assert "not the password" not in wrong.text
    assert long.status_code == 400
    assert 'id="email-error"' in long.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "deleted"}, "status"),
        ({"sort": "password"}, "sort"),
        ({"q": "x" * 201}, "q"),
        ({"cursor": "not-a-cursor"}, None),
    ],
)
@pytest.mark.parametrize("path", ["/console/clients", "/console/clients.csv"])
async def test_a_bad_client_filter_comes_back_marked(
    console: httpx.AsyncClient, token: str, query: dict[str, str], field: str | None, path: str
) -> None:
    answer = await console.get(path, params=query)

    if path.endswith(".csv") and field is None:
        assert answer.status_code == 200  # an export reads every page: it takes no cursor
        return
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    if field:
        assert f'id="{field}-error"' in answer.text
    else:
        assert "This page link is no longer valid" in answer.text


@pytest.mark.parametrize(
    ("path", "data", "status", "shown"),
    [
        ("other1/approve-billing", {"note": "  "}, 400, 'id="approve-note-error"'),
        ("other1/approve-billing", {}, 400, 'id="approve-note-error"'),
        ("other1/approve-billing", {"note": TOO_LONG}, 400, "at most 2000 characters"),
        ("other1/approve-billing", {"note": "ok", "version": "abc"}, 400, "version"),
        ("other1/approve-billing", {"note": "ok", "version": "1"}, 409, "changed since version 1"),
        ("other1/approve-billing", {"note": "ok", "colour": "red"}, 400, "colour"),
        ("ours1/approve-billing", {"note": "ok"}, 409, "this one is approved"),
        ("other1/revoke-billing", {"note": "ok"}, 409, "not billing_approved"),
        ("other1/revoke-billing", {"note": ""}, 400, 'id="revoke-note-error"'),
        ("solo1/transfer-requests", {"note": ""}, 400, 'id="transfer-note-error"'),
        ("solo1/transfer-requests", {"note": "again"}, 409, "already has an open transfer"),
        ("other1/transfer-requests", {"note": "move it"}, 409, "apply to unaffiliated"),
        ("nobody1/approve-billing", {"note": "ok"}, 404, "no client"),
        ("bad%20id/approve-billing", {"note": "ok"}, 404, "no client"),
        ("nobody1/recheck", {}, 404, "no client"),
        ("bad%20id/recheck", {}, 404, "no client"),
    ],
)
async def test_a_bad_decision_comes_back_with_the_reason(
    console: httpx.AsyncClient,
    token: str,
    path: str,
    data: dict[str, str],
    status: int,
    shown: str,
) -> None:
    answer = await console.post(f"/console/clients/{path}", data={"csrf_token": token, **data})

    assert answer.status_code == status, answer.text
    assert shown in answer.text
    assert answer.headers["content-type"].startswith("text/html")


async def _open_request_id(console: httpx.AsyncClient) -> str:
    page = (await console.get("/console/transfer-requests")).text
    return page.split("/console/transfer-requests/", 1)[1].split("/advance", 1)[0]


@pytest.mark.parametrize(
    ("data", "status", "shown"),
    [
        ({"state": "teleported"}, 400, "-state-error"),
        ({}, 400, "-state-error"),
        ({"state": "submitted", "note": TOO_LONG}, 400, "-note-error"),
        ({"state": "submitted", "version": "x"}, 400, "version"),
        ({"state": "submitted", "version": "7"}, 409, "changed since version 7"),
        ({"state": "completed"}, 409, "cannot become completed"),
    ],
)
async def test_a_bad_transfer_step_comes_back_with_the_reason(
    console: httpx.AsyncClient, token: str, data: dict[str, str], status: int, shown: str
) -> None:
    request_id = await _open_request_id(console)

    answer = await console.post(
        f"/console/transfer-requests/{request_id}/advance", data={"csrf_token": token, **data}
    )

    assert answer.status_code == status, answer.text
    assert shown in answer.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/console/transfer-requests?state=lost", 400),
        ("GET", "/console/transfer-requests.csv?state=lost", 400),
        ("GET", "/console/transfer-requests?cursor=zzz", 400),
        ("POST", "/console/transfer-requests/999999/advance?state=submitted", 404),
        ("POST", f"/console/transfer-requests/{HUGE}/advance", 404),
        ("POST", "/console/transfer-requests/abc/advance", 404),
        ("GET", "/console/audits/999999", 404),
        ("GET", f"/console/audits/{HUGE}", 404),
        ("GET", "/console/audits/abc", 404),
        ("POST", "/console/audits/999999/confirm-demotions", 404),
        ("POST", "/console/audits/999999/reject-demotions", 404),
        ("POST", "/console/provisioning/999999/retry", 404),
        ("POST", f"/console/provisioning/{HUGE}/retry", 404),
        ("POST", "/console/webhooks/999999/redeliver", 404),
        ("GET", "/console/clients/nobody1", 404),
        ("GET", "/console/clients/" + "x" * 80, 404),
        ("GET", "/console/no-such-page", 404),
        ("PUT", "/console/clients", 405),
    ],
)
async def test_bad_paths_and_ids_get_an_error_page_not_a_500(
    console: httpx.AsyncClient, token: str, method: str, path: str, status: int
) -> None:
    data = {"csrf_token": token, "state": "submitted"} if method == "POST" else None

    answer = await console.request(method, path, data=data)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")


async def test_starting_a_second_audit_or_resolving_one_that_holds_nothing_says_why(
    console: httpx.AsyncClient, token: str
) -> None:
    first = await console.post("/console/audits", data={"csrf_token": token})
    second = await console.post("/console/audits", data={"csrf_token": token})
    run_id = first.headers["location"].rsplit("/", 1)[1]
    confirm = await console.post(
        f"/console/audits/{run_id}/confirm-demotions", data={"csrf_token": token}
    )
    reject = await console.post(
        f"/console/audits/{run_id}/reject-demotions", data={"csrf_token": token}
    )

    assert first.status_code == 303
    assert second.status_code == 409
    assert "already queued or running" in second.text
    assert confirm.status_code == 409
    assert "holds no demotions" in confirm.text
    assert reject.status_code == 409
    assert "holds no demotions" in reject.text


async def test_a_retry_of_a_request_that_cannot_be_retried_says_why(
    console: httpx.AsyncClient, token: str
) -> None:
    answer = await console.post("/console/provisioning/0/retry", data={"csrf_token": token})

    assert answer.status_code == 404


async def test_a_form_with_a_file_or_too_many_fields_is_refused_politely(
    console: httpx.AsyncClient, token: str
) -> None:
    with_file = await console.post(
        "/console/clients/other1/approve-billing",
        data={"csrf_token": token, "note": "x"},
        files={"evidence": ("a.txt", b"hello")},
    )
    crowded = await console.post(
        "/console/clients/other1/approve-billing",
        data={"csrf_token": token, **{f"f{n}": "x" for n in range(60)}},
    )

    assert with_file.status_code == 400
    assert crowded.status_code == 400
