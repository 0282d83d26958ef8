"""`poolpilot sandbox [--port N] [--with-<provider>]` and `poolpilot sandbox reset`.

The port is bound before anything is printed, so a busy port is one line and no banner. SIGINT and SIGTERM stop
the server within a second (a request held by a `timeout` fault is cancelled after a short grace) and then the
companions (the real services a face starts beside the fakes, whose temp dirs and credentials files go with
them). A signal while a companion starts stops what has started so far.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import anyio

from poolpilot.server.kernel.config import ConfigError

if TYPE_CHECKING:
    from poolpilot.server.kernel.sandbox import Sandbox

__all__ = ["reset_state", "run_sandbox"]

# A request still in flight at a signal (a `timeout` fault holds one for an hour) gets this long, then is cancelled.
GRACE_S = 1


def reset_state() -> int:
    from poolpilot.server.shell.localstate import reset, state_dir

    directory = state_dir(create=False)
    removed = reset(directory) if directory.is_dir() else []
    what = "sandbox state and confirmation secret removed" if removed else "nothing was kept"
    print(f"poolpilot: {what} ({directory}); the next call starts from the seeds", file=sys.stderr)
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that name it, and without it every answer
    # written in two parts (headers, body) waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "--port", f"cannot bind {host}:{port} ({exc.strerror})", "stop what uses it, or pick another"
        ) from None
    return sock


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as SIGINT does), so `finally` blocks run instead of the process dying."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sandbox(ns: argparse.Namespace) -> int:
    from poolpilot.server.kernel.sandbox import FaultPlan, Sandbox, SandboxOptions
    from poolpilot.server.shell.registry import faces
    from poolpilot.server.shell.terminal import program

    plan = FaultPlan()
    for rule in ns.faults or ():
        plan.add(rule)
    knobs: dict[str, object] = {
        "job_seconds": (ns.job_seconds / 3, ns.job_seconds),
        "taurus_clock_skew_s": ns.clock_skew,
    }
    if ns.require_token:
        knobs["do_require_token"] = ns.require_token
    registered = faces()
    sandbox = Sandbox(Sandbox.fakes_of(registered, knobs=knobs), faults=plan)
    companions = [f for f in registered if f.companion is not None and getattr(ns, f"with_{f.name}", False)]
    for face in companions:
        assert face.companion is not None
        missing = face.companion.missing()
        if missing:
            raise ConfigError(f"--with-{face.name}", "needs " + "; ".join(missing), "install them first")
    sock = _bind(ns.host, ns.port)
    host = f"[{ns.host}]" if ":" in ns.host else ns.host
    base = f"http://{host}:{ns.port}"
    lines, env = ["poolpilot sandbox (fake provider APIs, demo data)"], {}
    for face in registered:
        if face.sandbox_banner is not None:
            more, wanted = face.sandbox_banner(base, SandboxOptions(knobs=knobs))
            lines += more
            env.update(wanted)
    pairs = " ".join(f"{k}={v}" for k, v in env.items())
    lines.append(f"  point poolpilot at it: {pairs} {program()} serve")
    stops: list[Callable[[], None]] = []
    try:
        with _terminate_raises():
            for face in companions:
                assert face.companion is not None
                started, stop = face.companion.start()
                stops.append(stop)
                lines.append("  " + " ".join(f"{k}='{v}'" for k, v in started.items()))

            def ready() -> None:
                print("\n".join(lines), file=sys.stderr, flush=True)

            anyio.run(_serve, sandbox, sock, ready)
    except KeyboardInterrupt:
        pass  # a signal before the server's own handlers were in place: stop what has started, quietly
    finally:
        sock.close()
        if stops:
            # A second signal must not cut the clean-up short: the companions would outlive us.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for stop in reversed(stops):
            stop()
    return 0


async def _serve(app: Sandbox, sock: socket.socket, ready: Callable[[], None]) -> None:
    from poolpilot.server.kernel.wire_server import WireServer

    server = WireServer(app)
    await server.start(sock)
    async with anyio.create_task_group() as tg:

        async def stop() -> None:
            await server.stop(GRACE_S)
            tg.cancel_scope.cancel()

        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            ready()
            async for _ in signals:
                if server.stopping:
                    server.abort()  # a second signal skips the grace
                    continue
                app.close()  # a request held by a `timeout` fault answers now, so the grace is not waited out
                tg.start_soon(stop)
