"""`make run`: embedded Postgres, migrations, the sandbox, the API and the worker, all on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as keys_service
from app.auth.scopes import ALL_SCOPES
from app.db import create_engine, create_sessionmaker
from app.kit.embedded_postgres import EmbeddedPostgres
from app.kit.local_database import EMBEDDED_DATABASE, embedded_datadir, ensure_database
from app.migrate import upgrade
from app.people.demo import demo_operator
from app.sandbox.partners import OUR_ENCODED_PARTNER_ID
from app.settings import Settings

DEV_KEY_NAME = "dev-all-scopes"
# Generous: on a loaded 2-core machine five processes take a while to import and start.
READY_TIMEOUT_SECONDS = 180.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _dev_fernet_key(data_dir: Path) -> str:
    """A development encryption key kept beside the data, so restarts can still decrypt."""
    key_file = data_dir / "dev-fernet.key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


async def _fresh_dev_key(url: str) -> str:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await _replace_key(session)
    finally:
        await engine.dispose()


async def _replace_key(session: AsyncSession) -> str:
    for key in await keys_service.list_keys(session):
        if key.name == DEV_KEY_NAME:
            await session.delete(key)
    await session.flush()
    return await keys_service.create_key(session, DEV_KEY_NAME, sorted(ALL_SCOPES))


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def run_everything(*, port: int) -> int:
    """Start every part, print the URL and an all-scopes key, stop everything on a signal."""
    settings = Settings()
    env = dict(os.environ)
    stop = threading.Event()
    server: EmbeddedPostgres | None = None
    children: list[subprocess.Popen[bytes]] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if settings.database.url is None:
            datadir = embedded_datadir(settings.data_dir)
            print(f"starting embedded PostgreSQL under {datadir} ...", flush=True)
            server = EmbeddedPostgres(datadir)
            server.start()
            ensure_database(server.url("postgres"), EMBEDDED_DATABASE)
            env["DATABASE_URL"] = server.url(EMBEDDED_DATABASE)
        database = env["DATABASE_URL"]
        upgrade(database)
        if not settings.provision.encryption_keys:
            env["PROVISION_ENCRYPTION_KEYS"] = _dev_fernet_key(settings.data_dir)
        python = sys.executable
        if settings.ctct.uses_sandbox:
            sandbox_port = _free_port()
            children.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "app.cli",
                        "sandbox",
                        "--port",
                        str(sandbox_port),
                        "--seed-demo",
                    ],
                    env=env,
                )
            )
            env["CTCT_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}/v3"
            env["CTCT_TOKEN_URL"] = f"http://127.0.0.1:{sandbox_port}/oauth2/token"
            env.setdefault("CTCT_PARTNER_ID", OUR_ENCODED_PARTNER_ID)
        children.append(
            subprocess.Popen(
                [python, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
            )
        )
        children.append(subprocess.Popen([python, "-m", "app.cli", "worker"], env=env))
        secret = asyncio.run(_fresh_dev_key(database))
        operator, operator_password = asyncio.run(demo_operator(database))
        base = f"http://127.0.0.1:{port}"
        if not _wait_ready(f"{base}/readyz", children):
            print("partnergate did not become ready; see the logs above", file=sys.stderr)
            return 1
        print(
            f"\npartnergate is ready at {base}  (OpenAPI: {base}/docs)\n"
            f"API key with every scope: {secret}\n"
            f"try: curl -H 'Authorization: Bearer {secret}' {base}/v1/stats\n"
            f"Console: {base}/console/  sign in as {operator} with password {operator_password}\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stop.is_set():
            if any(child.poll() is not None for child in children):
                print("a partnergate process exited; stopping", file=sys.stderr)
                return 1
            stop.wait(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if server is not None:
            server.stop()
        print("partnergate stopped", flush=True)
