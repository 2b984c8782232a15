"""People: who may use the console, their argon2 passwords, and `partnergate people`."""

from __future__ import annotations

import io

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import main as cli_main
from app.errors import Conflict, NotFound, ValidationFailed
from app.people import passwords
from app.people import service as people_service
from app.people.models import Role

PASSWORD = "a long enough password"


async def test_a_person_signs_in_with_their_password_until_disabled(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        added = await people_service.add_person(
            session, "  Pat@Example.COM ", Role.OPERATOR, password=PASSWORD
        )
    assert added.email == "pat@example.com"
    assert added.password_hash is not None
    assert added.password_hash.startswith("$argon2id$")
    assert PASSWORD not in added.password_hash

    async with sessionmaker() as session, session.begin():
        assert await people_service.sign_in(session, "PAT@example.com", PASSWORD) is not None
        assert await people_service.sign_in(session, "pat@example.com", PASSWORD + "x") is None
        assert await people_service.sign_in(session, "nobody@example.com", PASSWORD) is None
        await people_service.disable_person(session, "pat@example.com")
        assert await people_service.sign_in(session, "pat@example.com", PASSWORD) is None
        assert await people_service.active_person(session, "pat@example.com") is None


async def test_people_rules_duplicates_weak_passwords_proxy_only_people(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        await people_service.add_person(session, "sso@example.com", Role.VIEWER, password=None)
        with pytest.raises(Conflict):
            await people_service.add_person(session, "SSO@example.com", Role.ADMIN, password=None)
        with pytest.raises(ValueError, match="at least 12 characters"):
            await people_service.add_person(session, "b@example.com", Role.VIEWER, password="short")
        with pytest.raises(ValidationFailed):
            await people_service.add_person(session, "not an email", Role.VIEWER, password=None)
        with pytest.raises(NotFound):
            await people_service.disable_person(session, "nobody@example.com")
        # No password: signs in only through the sign-on proxy.
        assert await people_service.sign_in(session, "sso@example.com", "") is None
        await people_service.set_password(session, "sso@example.com", PASSWORD)
        assert await people_service.sign_in(session, "sso@example.com", PASSWORD) is not None


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR)
    assert Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)


async def test_a_wrong_email_costs_a_hash_check_too() -> None:
    assert await passwords.verify_password(None, "anything") is False
    assert await passwords.verify_password("not a hash", "anything") is False
    assert await passwords.verify_password(await passwords.hash_password(PASSWORD), PASSWORD)


def test_cli_adds_lists_and_disables_people(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert cli_main(["people", "add", "ops@example.com", "--role", "operator"]) == 0
    added = capsys.readouterr()
    generated = added.out.strip().splitlines()[-1].removeprefix("password: ")
    assert "ops@example.com may use the console as operator" in added.out
    assert len(generated) >= 20
    assert "not shown again" in added.err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["people", "add", "v@example.com", "--role", "viewer", "--password-stdin"]) == 0
    assert cli_main(["people", "add", "sso@example.com", "--role", "admin", "--no-password"]) == 0
    assert cli_main(["people", "add", "ops@example.com", "--role", "admin"]) == 2
    assert cli_main(["people", "disable", "v@example.com"]) == 0
    assert cli_main(["people", "disable", "nobody@example.com"]) == 2
    capsys.readouterr()

    assert cli_main(["people", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert rows["ops@example.com"][1:3] == ["operator", "set"]
    assert rows["sso@example.com"][1:3] == ["admin", "-"]
    assert rows["v@example.com"][-1] != "-"
    with pytest.raises(SystemExit):
        cli_main(["people", "add", "x@example.com", "--role", "owner"])
