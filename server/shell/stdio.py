"""The stdio transport: JSON-RPC lines on stdin and stdout, read and written from the event loop where it can.

The SDK reads stdin and writes stdout through `anyio.wrap_file`: every line read and every message written
(`write`, then `flush`) is a round trip to a worker thread, about 0.1 ms of wall time each on a quiet machine and
more under load (issue 23). When stdin and stdout are pipes or sockets (how MCP clients start servers), poolpilot
reads and writes them as asyncio pipe transports instead: no thread, no hop. Anything else (a terminal, a file)
keeps a reader thread for stdin and the SDK's writer for stdout, because a terminal set non-blocking stays so for
the shell after we exit. stdout shares no pipe with stderr on the fast path (`2>&1` leaves the SDK's writer): a
non-blocking stderr would make a log line fail when the pipe is full.

Either way the SDK's stream claim is kept: fd 0 reads EOF and fd 1 writes to stderr while serving, so a child
process or a stray `print` cannot eat or corrupt the protocol. Lines are decoded as the SDK's text wrapper decodes
them (UTF-8 with replacement characters, universal newlines).
"""

from __future__ import annotations

import asyncio
import codecs
import io
import os
import signal
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from mcp.server.mcpserver import MCPServer

__all__ = ["run_stdio"]

PAUSE_LINES = 64  # stdin lines waiting for the server past which reading pauses


def _is_pipe(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


class _StdinLines:
    """stdin lines read by a daemon thread. The SDK reads stdin in an anyio worker thread, which is not a daemon
    and cannot be abandoned: on SIGTERM while the client kept stdin open and idle, the process hung until the
    client closed it. Here a signal cancels the receive and the blocked reader dies with the process."""

    def __init__(self, fd: int) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](0)
        self._file = open(fd, encoding="utf-8", errors="replace")  # noqa: SIM115 - lives with the process

    async def start(self) -> None:
        token = anyio.lowlevel.current_token()
        threading.Thread(target=self._pump, args=(token,), name="poolpilot stdin", daemon=True).start()

    def _pump(self, token: anyio.lowlevel.EventLoopToken) -> None:
        try:
            try:
                while line := self._file.readline():
                    anyio.from_thread.run(self._send.send, line, token=token)
            except OSError:
                pass  # a terminal that hung up reads EIO, not EOF: the end of input all the same
            anyio.from_thread.run_sync(self._send.close, token=token)
        except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the loop or the receiver is gone: the server is shutting down

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _PipeLines(asyncio.Protocol):
    """stdin lines from a pipe read by the event loop itself (no thread, no hop per line). Reading pauses while
    `PAUSE_LINES` lines wait for the server, as the SDK's reader blocks until its line is taken."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")("replace"), True)
        self._pieces: list[str] = []  # the line being received, in pieces (joined once, at its newline)
        self._lines: deque[str] = deque()
        self._ended = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None

    async def start(self) -> None:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: self, _raw(self._fd, "rb"))
        self._transport = transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._take(self._decoder.decode(data))

    def eof_received(self) -> bool:
        self._take(self._decoder.decode(b"", final=True))
        if self._pieces:
            self._lines.append("".join(self._pieces))  # a last line without its newline, as readline() returns it
            self._pieces = []
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    def _take(self, text: str) -> None:
        if "\n" not in text:
            if text:
                self._pieces.append(text)
            return
        first, *complete, last = text.split("\n")
        self._pieces.append(first)
        self._lines.append("".join(self._pieces) + "\n")
        self._lines.extend(line + "\n" for line in complete)
        self._pieces = [last] if last else []
        self._wake()
        if len(self._lines) >= PAUSE_LINES and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        while not self._lines:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        line = self._lines.popleft()
        if self._paused and len(self._lines) < PAUSE_LINES // 2 and self._transport is not None:
            self._transport.resume_reading()
            self._paused = False
        return line


class _Writable(asyncio.Protocol):
    """Flow control for the stdout pipe: `drain` waits while what was written is not all in the pipe yet."""

    def __init__(self) -> None:
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self.lost: Exception | None = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or BrokenPipeError("stdout was closed")
        self.resume_writing()

    async def drain(self) -> None:
        if self.lost is not None:
            raise self.lost
        if self._paused:
            self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed
            if self.lost is not None:
                raise self.lost


class _PipeOut:
    """stdout as a pipe transport written from the event loop, in the shape the SDK writes to (`write`, `flush`)."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: _Writable) -> None:
        self._transport = transport
        self._protocol = protocol
        # Paused while anything is unwritten: `flush` returns once the message is in the pipe, as the SDK's does,
        # so nothing is still buffered here when the server exits after its last answer.
        transport.set_write_buffer_limits(high=0)

    async def write(self, text: str) -> None:
        if self._protocol.lost is not None:
            raise self._protocol.lost
        self._transport.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._protocol.drain()


def _claim(fd: int, diversion: int) -> int:
    """A private copy of `fd` for the wire, and `fd` pointed at `diversion`, as the SDK's stream claim does. The copy
    is never 0-2 (were fd 2 closed, a plain dup could become "stderr" and log lines would land on the wire)."""
    if sys.platform == "win32":  # pragma: no cover - poolpilot's CI is Linux
        private = os.dup(fd)
    else:
        import fcntl

        private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(diversion, fd)
    return private


def _raw(fd: int, mode: str) -> io.FileIO:
    return io.FileIO(fd, mode)  # the pipe transport owns it and closes it


def _claim_stdin() -> int:
    with open(os.devnull, "rb") as null:
        return _claim(0, null.fileno())


def _asyncio_pipes() -> bool:
    """asyncio pipe transports exist here: an asyncio loop (not trio), off Windows (its loop has no pipe fds)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return sys.platform != "win32"


async def _streams() -> tuple[Any, Any]:
    """(stdin lines, stdout writer or None for the SDK's own), with fd 0 and fd 1 claimed."""
    pipes = _asyncio_pipes()
    stdin_fd = _claim_stdin()
    stdin: _PipeLines | _StdinLines = _PipeLines(stdin_fd) if pipes and _is_pipe(stdin_fd) else _StdinLines(stdin_fd)
    await stdin.start()
    if not (pipes and _is_pipe(1) and not _same_file(1, 2)):
        return stdin, None
    pipe = _raw(_claim(1, 2), "wb")
    transport, protocol = await asyncio.get_running_loop().connect_write_pipe(_Writable, pipe)
    return stdin, _PipeOut(transport, protocol)


async def run_stdio(app: MCPServer[Any], on_ready: Callable[[], None] | None = None) -> None:
    """Serve stdio until EOF or SIGINT/SIGTERM; a signal cancels in-flight calls and closes the clients.

    `on_ready` runs once the signal handlers are in place (the banner: a signal after it exits cleanly)."""
    from mcp.server.stdio import stdio_server

    async with anyio.create_task_group() as tg:

        async def stop_on_signal(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        await tg.start(stop_on_signal)
        stdin, stdout = await _streams()
        if on_ready is not None:
            on_ready()
        lowlevel = app._lowlevel_server  # what MCPServer.run_stdio_async runs; it takes no stdin of ours
        streams = stdio_server(stdin=cast("anyio.AsyncFile[str]", stdin), stdout=cast("anyio.AsyncFile[str]", stdout))
        async with streams as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        tg.cancel_scope.cancel()
