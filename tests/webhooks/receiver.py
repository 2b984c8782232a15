"""A real loopback HTTP receiver for webhooks that can be down for its first N requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    answered: int


@dataclass
class Receiver:
    down_for: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            status = 503 if len(self.received) < self.down_for else 200
            self.received.append(Received(body, dict(request.headers), status))
        return Response("down" if status == 503 else "ok", status_code=status)


@contextmanager
def running_receiver(receiver: Receiver) -> Iterator[str]:
    """Serve `receiver` on a free loopback port in a thread; yield its hook URL."""
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
