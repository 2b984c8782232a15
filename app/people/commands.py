"""`partnergate people add|list|disable|set-password`: who may use the console, and how."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.people import passwords
from app.people import service as people_service
from app.people.models import Role

T = TypeVar("T")
InSession = Callable[[str, Callable[[AsyncSession], Awaitable[Any]]], Any]
WithDatabase = Callable[[Callable[[argparse.Namespace, str], int]], Callable[..., int]]


def _password(args: argparse.Namespace) -> tuple[str | None, bool]:
    """The password to set and whether it was generated (and so must be printed)."""
    if getattr(args, "no_password", False):
        return None, False
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return passwords.new_password(), True


def _print_generated(password: str) -> None:
    print(f"password: {password}")
    print("Hand it over now: it is not shown again.", file=sys.stderr)


def register(commands: Any, with_database: WithDatabase, in_session: InSession) -> None:
    """Add the `people` subcommands to the `partnergate` parser."""

    def add(args: argparse.Namespace, url: str) -> int:
        password, generated = _password(args)
        person = in_session(
            url,
            lambda s: people_service.add_person(s, args.email, Role(args.role), password=password),
        )
        print(f"{person.email} may use the console as {person.role}")
        if generated and password is not None:
            _print_generated(password)
        return 0

    def list_(args: argparse.Namespace, url: str) -> int:
        people = in_session(url, people_service.list_people)
        print(f"{'EMAIL':40} {'ROLE':9} {'PASSWORD':9} {'LAST SIGN-IN':20} DISABLED")
        for person in people:
            last = f"{person.last_sign_in_at:%Y-%m-%d %H:%M}" if person.last_sign_in_at else "-"
            disabled = f"{person.disabled_at:%Y-%m-%d %H:%M}" if person.disabled_at else "-"
            has_password = "set" if person.password_hash else "-"
            print(f"{person.email:40} {person.role:9} {has_password:9} {last:20} {disabled}")
        return 0

    def disable(args: argparse.Namespace, url: str) -> int:
        person = in_session(url, lambda s: people_service.disable_person(s, args.email))
        print(f"{person.email} disabled")
        return 0

    def set_password(args: argparse.Namespace, url: str) -> int:
        password, generated = _password(args)
        assert password is not None
        person = in_session(url, lambda s: people_service.set_password(s, args.email, password))
        print(f"password of {person.email} replaced")
        if generated:
            _print_generated(password)
        return 0

    people = commands.add_parser(
        "people", help="manage the people who use the console"
    ).add_subparsers(dest="people_command", required=True)
    stdin_help = "read the password from the first line of stdin instead of generating one"

    add_parser = people.add_parser("add", help="add a person (prints a generated password once)")
    add_parser.add_argument("email")
    add_parser.add_argument("--role", required=True, choices=[role.value for role in Role])
    secret = add_parser.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help=stdin_help)
    secret.add_argument(
        "--no-password", action="store_true", help="no password: signs in through the proxy only"
    )
    add_parser.set_defaults(handler=with_database(add))

    people.add_parser("list", help="list people").set_defaults(handler=with_database(list_))

    disable_parser = people.add_parser("disable", help="disable a person; their sessions end")
    disable_parser.add_argument("email")
    disable_parser.set_defaults(handler=with_database(disable))

    password_parser = people.add_parser("set-password", help="replace a person's password")
    password_parser.add_argument("email")
    password_parser.add_argument("--password-stdin", action="store_true", help=stdin_help)
    password_parser.set_defaults(handler=with_database(set_password))
