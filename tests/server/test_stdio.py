"""The stdio transport (server/shell/stdio.py): stdin lines read from a pipe split and decode as the SDK's text
wrapper reads them, stdout written from the event loop keeps order and flow control and reports a closed reader,
and a server whose stdin or stdout is not a pipe (a file, `2>&1`) still speaks the protocol."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import subprocess
import sys
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolpilot.server.shell import stdio
from poolpilot.server.shell.stdio import _PipeLines, _PipeOut, _Writable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio

# Bytes that stress the line splitting: every newline form, bytes that are not UTF-8, multi-byte characters (the
# Unicode line and paragraph separators and NEL are not line ends for readline) and plain text.
PIECES = st.sampled_from(
    [b"\n", b"\r", b"\r\n", b"\xff", b"\xc3", b"\xe2\x80\xa8", b"\xc2\x85", "é€😀".encode(), b"{}", b'"a"', b" "]
) | st.binary(max_size=8)


def _readlines(data: bytes) -> list[str]:
    wrapper = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    return list(iter(wrapper.readline, ""))


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(PIECES, max_size=30), cuts=st.lists(st.integers(0, 200), max_size=8))
async def test_pipe_lines_read_as_the_sdks_text_wrapper_reads_them(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    lines = _PipeLines(-1)
    start = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:  # arbitrary chunk boundaries
        lines.data_received(data[start:cut])
        start = cut
    lines.eof_received()
    assert [line async for line in lines] == _readlines(data)


class _Reading(asyncio.ReadTransport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


async def test_stdin_reading_pauses_while_lines_wait_for_the_server() -> None:
    lines, transport = _PipeLines(-1), _Reading()
    lines.connection_made(transport)
    lines.data_received(b"".join(b'{"n":%d}\n' % n for n in range(100)))  # a client flooding requests
    assert transport.calls == ["pause"]
    taken = [await anext(lines) for _ in range(100 - stdio.PAUSE_LINES // 2 + 1)]
    assert transport.calls == ["pause", "resume"]  # resumed once the backlog is half gone
    lines.eof_received()
    rest = [line async for line in lines]
    assert [json.loads(line)["n"] for line in taken + rest] == list(range(100))


async def test_stdout_pipe_keeps_order_waits_for_a_slow_reader_and_reports_a_closed_one() -> None:
    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(_Writable, io.FileIO(write_fd, "wb"))
    out = _PipeOut(transport, protocol)
    lines = [json.dumps({"n": n, "pad": "x" * 1000}) + "\n" for n in range(300)]  # ~300 KB, past the pipe buffer

    async def write_all() -> None:
        for line in lines:
            await out.write(line)
            await out.flush()
            assert transport.get_write_buffer_size() == 0  # flushed means in the pipe, not held here

    writer = asyncio.ensure_future(write_all())
    await asyncio.sleep(0.05)
    assert not writer.done()  # nobody reads yet: flush waits instead of buffering without bound
    received = b""
    reader = io.FileIO(read_fd, "rb")
    while len(received) < sum(len(line) for line in lines):
        received += await asyncio.to_thread(reader.read, 65536)
    await writer
    assert received.decode() == "".join(lines)
    reader.close()
    with pytest.raises(BrokenPipeError):
        for _ in range(200):
            await out.write("more\n")
            await out.flush()
            await asyncio.sleep(0.005)
    transport.close()


REQUESTS = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},'
    b'"clientInfo":{"name":"t","version":"1"}}}\n{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
    b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
)


def _answers(text: str) -> dict[int, object]:
    found = {}
    for line in text.split("\n")[:-1]:  # complete lines only: the last may still be being written
        if line.startswith("{"):
            message = json.loads(line)
            found[message["id"]] = message.get("result")
    return found


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "POOLPILOT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "POOLPILOT_TOOL_CACHE": "off",
        "PYTHONPATH": str(ROOT),
    }


def _wait_for_answers(read: Callable[[], str], deadline_s: float = 60) -> dict[int, object]:
    """Read output until the answers to requests 1 and 2 are in (or the deadline passes)."""
    text, end = "", time.monotonic() + deadline_s
    while set(_answers(text)) != {1, 2} and time.monotonic() < end:
        text += read()
    return _answers(text)


@pytest.mark.parametrize("layout", ["pipes", "stdout-file", "stdout-is-stderr", "stdin-tty"])
def test_the_protocol_works_whatever_stdin_and_stdout_are(tmp_path: Path, layout: str) -> None:
    """The client keeps stdin open until it has its answers (at EOF the SDK cancels what is still in flight)."""
    master = slave = -1
    stdin: int = subprocess.PIPE
    stdout: int | IO[bytes] = subprocess.PIPE
    stderr: int = subprocess.DEVNULL
    if layout == "stdout-file":  # stdout is a regular file: the SDK's writer
        stdout = (tmp_path / "out").open("wb")
    elif layout == "stdout-is-stderr":  # 2>&1: one pipe for both, so stdout stays blocking (the SDK's writer)
        stderr = subprocess.STDOUT
    elif layout == "stdin-tty":  # a terminal is never made non-blocking: the reader thread
        master, slave = pty.openpty()
        tty.setraw(slave)
        stdin = slave
    process = subprocess.Popen(
        [sys.executable, "-m", "poolpilot.server", "serve"],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=_env(tmp_path),
    )
    try:
        if master >= 0:
            os.close(slave)
            os.write(master, REQUESTS)
        else:
            assert process.stdin is not None
            process.stdin.write(REQUESTS)
            process.stdin.flush()
        if process.stdout is not None:
            pipe = process.stdout
            answers = _wait_for_answers(lambda: pipe.readline().decode())
        else:
            seen = 0

            def more() -> str:  # what the file has grown by
                nonlocal seen
                time.sleep(0.05)
                data = (tmp_path / "out").read_bytes()[seen:]
                seen += len(data)
                return data.decode()

            answers = _wait_for_answers(more)
        assert set(answers) == {1, 2}, answers
        tools = answers[2]
        assert isinstance(tools, dict) and len(tools["tools"]) == 15
    finally:
        if master >= 0:
            os.close(master)  # the terminal hangs up: EOF
        elif process.stdin is not None:
            process.stdin.close()
        assert process.wait(30) == 0
        if not isinstance(stdout, int):
            stdout.close()
