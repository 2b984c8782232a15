"""Serving the sandbox: in the foreground for `partnergate sandbox`, or in a background thread
on a free loopback port for tests that need real sockets or several OS processes."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.sandbox.app import create_sandbox_app, describe_demo, seed_demo
from app.sandbox.state import SandboxState

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0

# Like CTCT behind its load balancer, keep idle connections well beyond uvicorn's 5 s default:
# a client reusing a connection the server is closing gets "disconnected without a response".
SANDBOX_KEEP_ALIVE_SECONDS = 75


def serve(host: str, port: int, *, seed: bool) -> None:
    """Serve a fresh sandbox (control API on, demo accounts if `seed`) until interrupted."""
    state = SandboxState()
    banner = [f"CTCT sandbox on http://{host}:{port} (control API under /_sandbox/)"]
    if seed:
        banner.append(describe_demo(state, seed_demo(state)))
    # This is the sandbox command's own console output (partner credentials and demo tokens
    # for a developer), not a log event.
    sys.stdout.write("\n".join(banner) + "\n")
    sys.stdout.flush()
    uvicorn.run(
        create_sandbox_app(state, control=True),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=SANDBOX_KEEP_ALIVE_SECONDS,
    )


@contextmanager
def running_sandbox(state: SandboxState | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the sandbox on a free port of `host` in a thread; yield its base URL."""
    app = create_sandbox_app(state if state is not None else SandboxState(), control=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=SANDBOX_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="sandbox-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        listener.close()
