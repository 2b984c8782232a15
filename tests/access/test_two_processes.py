"""Two real API processes on one database: a change made through one reaches the other's
cached access answers within a second."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from app.auth.scopes import Scope
from app.clients.models import ClientStatus
from app.migrate import PROJECT_ROOT
from app.sandbox.server import running_sandbox
from tests.access.conftest import SeedClient
from tests.conftest import TEST_FERNET_KEY, ApiKeyFactory, credentials_env, new_sandbox
from tests.kit.polling import poll_until

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def api_process(database_url: str, sandbox_url: str) -> Iterator[str]:
    """`python -m app.cli serve` on a free loopback port; yields its base URL once ready."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "CTCT_BASE_URL": f"{sandbox_url}/v3",
        "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
        "PROVISION_ENCRYPTION_KEYS": TEST_FERNET_KEY,
        **credentials_env(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a loaded 2-core machine imports slowly
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API process did not become ready")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_a_billing_approval_through_one_process_reaches_the_other_within_a_second(
    database_url: str, api_key: ApiKeyFactory, seed_client: SeedClient
) -> None:
    account_id = await seed_client("acct-two-procs", ClientStatus.OTHER_PARTNER)
    checker = {"Authorization": f"Bearer {await api_key(Scope.ACCESS_CHECK)}"}
    decider = {"Authorization": f"Bearer {await api_key(Scope.CLIENTS_DECIDE)}"}
    with ExitStack() as stack:
        sandbox_url = stack.enter_context(running_sandbox(new_sandbox()))
        first = stack.enter_context(api_process(database_url, sandbox_url))
        second = stack.enter_context(api_process(database_url, sandbox_url))
        async with httpx.AsyncClient(timeout=5) as http:

            async def allowed_on_second() -> bool:
                response = await http.get(f"{second}/v1/access/{account_id}", headers=checker)
                assert response.status_code == 200, response.text
                return bool(response.json()["allowed"])

            for _ in range(3):  # warm the second process's cache
                assert await allowed_on_second() is False

            approval = await http.post(
                f"{first}/v1/clients/{account_id}/billing-approval",
                json={"note": "approved for extra billing"},
                headers=decider,
            )
            assert approval.status_code == 200, approval.text
            await poll_until(
                allowed_on_second, lambda allowed: allowed, timeout=10.0, interval=0.02
            )

            revocation = await http.request(
                "DELETE",
                f"{first}/v1/clients/{account_id}/billing-approval",
                json={"note": "revoked"},
                headers=decider,
            )
            assert revocation.status_code == 200, revocation.text
            await poll_until(
                allowed_on_second, lambda allowed: not allowed, timeout=10.0, interval=0.02
            )
