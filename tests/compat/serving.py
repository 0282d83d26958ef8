"""uvicorn serving a `Sandbox` in a background thread on a free loopback port, with bounded start and stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from server.sandbox import Sandbox

__all__ = ["Serve", "served"]

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0

Serve = Callable[[Sandbox], str]  # the `serve` fixture: sandbox in, base URL out


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening, so readiness is an event rather than a polling loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def served(sandbox: Sandbox) -> Iterator[str]:
    """The sandbox at `http://127.0.0.1:PORT` until the block ends.

    The socket is bound here (port 0) and handed to uvicorn, so there is no race for the port. `date_header=False`:
    the TaurusDB fake sends its own (possibly skewed) Date, as `poolpilot sandbox` does.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(sandbox, log_level="warning", lifespan="off", date_header=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"sandbox-{port}")
    thread.start()
    try:
        assert server.ready.wait(START_TIMEOUT_S), "the sandbox did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
    assert not thread.is_alive(), "the sandbox did not stop"
