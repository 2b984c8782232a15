"""The `partnergate` command: run the service, migrate, manage API keys, serve the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditRun, AuditState
from app.auth import service as keys_service
from app.auth.scopes import parse_scopes
from app.ctct import commands as ctct_commands
from app.db import create_engine, create_sessionmaker
from app.errors import AppError
from app.imports import commands as import_commands
from app.kit.local_database import database_url
from app.people import commands as people_commands
from app.settings import Settings
from app.webhooks import commands as webhook_commands

if TYPE_CHECKING:
    from app.kit.crypto import PasswordCipher

T = TypeVar("T")


def _run_in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def runner() -> T:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())


def _keys_create(args: argparse.Namespace, url: str) -> int:
    scopes = parse_scopes(args.scopes)
    secret = _run_in_session(url, lambda s: keys_service.create_key(s, args.name, scopes))
    print(f"API key {args.name!r} with scopes {', '.join(scopes)}:")
    print(secret)
    print("Store it now: it is not shown again.", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace, url: str) -> int:
    keys = _run_in_session(url, keys_service.list_keys)
    print(f"{'NAME':24} {'SCOPES':60} {'CREATED':20} {'LAST USED':20} REVOKED")
    for key in keys:
        print(
            f"{key.name:24} {','.join(key.scopes):60} {key.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{key.last_used_at or '-'!s:20} {key.revoked_at or '-'}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace, url: str) -> int:
    _run_in_session(url, lambda s: keys_service.revoke_key(s, args.name))
    print(f"API key {args.name!r} revoked")
    return 0


def _fernet(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def _migrate(args: argparse.Namespace, url: str) -> int:
    from app.migrate import upgrade

    upgrade(url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def _with_database(command: Callable[[argparse.Namespace, str], int]) -> Callable[..., int]:
    def wrapped(args: argparse.Namespace) -> int:
        settings = Settings()
        with database_url(settings.database.url, data_dir=settings.data_dir) as url:
            return command(args, url)

    return wrapped


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.kit.gc_pauses import freeze_startup_heap
    from app.kit.logging import configure_logging
    from app.main import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        access_log=False,
        # Longer than the usual load-balancer idle timeout (60 s): a server that closes an idle
        # keep-alive connection first races the client's next request on it.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=10,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from app.kit.gc_pauses import freeze_startup_heap
    from app.kit.jobs import TASK_MODULES
    from app.kit.logging import configure_logging
    from app.worker.main import run_worker

    settings = Settings()
    configure_logging(settings.log_level)
    for module in TASK_MODULES:  # imported now (not as the worker starts): frozen with the rest
        importlib.import_module(module)
    freeze_startup_heap()
    asyncio.run(run_worker(settings))
    return 0


def _audit_summary(run: AuditRun) -> str:
    """A few human lines about a finished audit run."""
    lines = [
        f"audit run {run.id}: {run.state}",
        f"  pages read {run.pages_read}; CTCT calls {run.ctct_calls} "
        f"({run.list_calls} list, {run.token_calls} token)",
        f"  clients seen {run.clients_seen}, added {run.clients_added}, "
        f"changed {run.clients_changed}, demoted {run.demotions}, held {run.held_demotions}",
        f"  duration {run.duration_ms} ms",
    ]
    if run.error:
        lines.append(f"  error: {run.error}")
    if run.state == AuditState.HELD.value:
        lines.append(
            f"  demotions held: confirm with POST /v1/audits/{run.id}/confirm-demotions "
            f"or reject with POST /v1/audits/{run.id}/reject-demotions"
        )
    return "\n".join(lines)


def _audit_run(args: argparse.Namespace, url: str) -> int:
    from app.audit import runner

    settings = Settings()
    settings.database.url = url
    run = asyncio.run(runner.run_with_own_engine(settings, requested_by=os.environ.get("USER")))
    if run is None:
        print("partnergate: an audit is already queued or running", file=sys.stderr)
        return 1
    print(_audit_summary(run))
    return 0 if run.state in (AuditState.COMPLETED.value, AuditState.HELD.value) else 1


def _secret_box(settings: Settings) -> PasswordCipher:
    """What encrypts subscriber secrets at rest: the provisioning keys, as in every process."""
    from app.kit.crypto import PasswordCipher

    return PasswordCipher(settings.provision.encryption_keys)


def _sandbox(args: argparse.Namespace) -> int:
    from app.sandbox.server import serve

    serve(args.host, args.port, seed=args.seed_demo)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from app.devrun import run_everything

    return run_everything(port=args.port)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="partnergate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run everything locally (make run)")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    dev.set_defaults(handler=_dev)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run background jobs (provisioning retries)")
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_with_database(_migrate))

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated, e.g. access:check")
    create.set_defaults(handler=_with_database(_keys_create))
    keys.add_parser("list", help="list keys").set_defaults(handler=_with_database(_keys_list))
    keys.add_parser(
        "fernet", help="print a new PROVISION_ENCRYPTION_KEYS entry (not an API key)"
    ).set_defaults(handler=_fernet)
    revoke = keys.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(handler=_with_database(_keys_revoke))

    audit = commands.add_parser("audit", help="reconcile with CTCT's partner list").add_subparsers(
        dest="audit_command", required=True
    )
    audit.add_parser("run", help="run one audit now and print its summary").set_defaults(
        handler=_with_database(_audit_run)
    )

    ctct_commands.register(commands, _with_database)
    webhook_commands.register(commands, _with_database, _secret_box)
    import_commands.register(commands, _with_database)
    people_commands.register(commands, _with_database, _run_in_session)

    sandbox = commands.add_parser("sandbox", help="serve the CTCT partner API simulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8900)
    sandbox.add_argument("--seed-demo", action="store_true", help="load demo accounts")
    sandbox.set_defaults(handler=_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `partnergate` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except (AppError, ValueError) as exc:
        message = exc.detail if isinstance(exc, AppError) else str(exc)
        print(f"partnergate: {message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
