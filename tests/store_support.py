"""A real `redis-server` (Debian's `redis-server` package, Redis 7) on a free loopback port, for the shared-store tests.

Without the binary the tests skip with the install command, except on CI (`CI=true`), where a runner without it
is broken and the tests fail. `.ci/install-redis.sh` installs it (scripts/test.sh runs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import free_port

__all__ = ["SECRET", "RedisServer", "redis_server"]

SECRET = "replica-shared-secret-0123456789abcdef"


def _binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        reason = "redis-server is not installed (apt-get install -y redis-server, or .ci/install-redis.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], up: bool) -> None:
    deadline = time.monotonic() + 10
    while True:  # bounded readiness polling of a subprocess's port
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if up:
                return
        except OSError:
            if not up:
                return
            assert process.poll() is None, "redis-server exited at start"
        assert time.monotonic() < deadline, f"redis-server did not {'start' if up else 'stop'} in time"
        time.sleep(0.02)


class RedisServer:
    """One redis-server without persistence; `stop()` and `start()` again on the same port simulate an outage."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*args, "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self._process, up=True)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
            _wait_for_port(self.port, self._process, up=False)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(_binary(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
