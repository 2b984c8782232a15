"""Real OS processes for multi-process tests: `python -m app.cli serve|worker` on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.migrate import PROJECT_ROOT
from tests.conftest import TEST_FERNET_KEY, credentials_env
from tests.kit.polling import poll_until

STOP_TIMEOUT_SECONDS = 20.0
STARTUP_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_env(database_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """The environment a partnergate process reads its settings from."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARTNERGATE")}
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "CTCT_BASE_URL": f"{sandbox_url}/v3",
            "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
            "CTCT_RATE_PER_SECOND": "1000",
            "CTCT_INTERACTIVE_RESERVE": "0",
            "CTCT_READ_RETRIES": "0",
            "CTCT_TIMEOUT_SECONDS": "2",
            "PROVISION_ENCRYPTION_KEYS": TEST_FERNET_KEY,
            "PROVISION_RETRY_BASE_SECONDS": "0.05",
            "PROVISION_RETRY_CAP_SECONDS": "0.5",
            "PROVISION_LEASE_SECONDS": "6",
            "PROVISION_WORKER_POLL_SECONDS": "0.2",
            "PROVISION_WAIT_SECONDS": "4",
            "PROVISION_WORKER_CONCURRENCY": "4",
            "PROVISION_RECONCILE_INTERVAL_SECONDS": "0.5",
            "LOG_LEVEL": "DEBUG",
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": "0",
            **credentials_env(),
        }
    )
    env.update(extra)
    return env


@dataclass
class Process:
    """One partnergate process; its stderr (the structured log) goes to `log_path`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT_SECONDS)

    def terminate(self) -> int:
        """SIGTERM, then wait for a graceful exit; its exit code."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(STOP_TIMEOUT_SECONDS)


@dataclass
class Processes:
    """Starts processes and stops whatever is still running at the end."""

    env: dict[str, str]
    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    async def apis(self, count: int = 1, **extra_env: str) -> list[Process]:
        """`partnergate serve` on free ports, once each serves (/healthz)."""
        started = []
        for _ in range(count):
            port = free_port()
            process = self._spawn(
                "api",
                ["serve", "--host", "127.0.0.1", "--port", str(port)],
                {**self.env, **extra_env},
            )
            process.port = port
            started.append(process)
        await asyncio.gather(*(self._ready(process) for process in started))
        return started

    async def api(self, **extra_env: str) -> Process:
        return (await self.apis(1, **extra_env))[0]

    async def _ready(self, process: Process) -> None:
        async def ready() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"the API exited:\n{process.log()}")
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{process.url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        # Generous: importing the app takes seconds on a loaded machine.
        await poll_until(ready, bool, timeout=STARTUP_TIMEOUT_SECONDS, interval=0.1)

    def worker(self, **extra_env: str) -> Process:
        """`partnergate worker` (not waited for: jobs wait in the database)."""
        return self._spawn("worker", ["worker"], {**self.env, **extra_env})

    async def running_worker(self, **extra_env: str) -> Process:
        """`partnergate worker`, once it has started taking jobs."""
        process = self.worker(**extra_env)

        async def started() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"the worker exited:\n{process.log()}")
            return "worker.run.started" in process.log()

        await poll_until(started, bool, timeout=STARTUP_TIMEOUT_SECONDS, interval=0.1)
        return process

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.started)

    def stop_all(self) -> None:
        for process in self.started:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


@contextmanager
def processes(env: dict[str, str], log_dir: Path) -> Iterator[Processes]:
    group = Processes(env, log_dir)
    try:
        yield group
    finally:
        group.stop_all()
