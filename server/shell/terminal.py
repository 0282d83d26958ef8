"""What the CLI shows a person: the command to type next, progress of waits, and the confirmation question."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["Progress", "program", "question", "rerun_command"]

# The guard's question ends with the fingerprint so that a changed target changes the question (MCP clients may
# cache answers by question); a person gets the preview and one question of ours instead.
_GUARD_TAIL = re.compile(r"\s*Proceed\?\s*\(state [0-9a-f]+\)\s*$")


def program() -> str:
    """How to run this poolpilot again: `poolpilot` when that name on PATH is this installation, else its full
    path (a venv that is not activated), else this Python with `-m poolpilot.server`."""
    candidates = [Path(sys.argv[0]) if sys.argv and Path(sys.argv[0]).name == "poolpilot" else None]
    candidates.append(Path(sys.executable).parent / "poolpilot")
    for script in candidates:
        if script is None or not script.is_file():
            continue
        on_path = shutil.which("poolpilot")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "poolpilot"
        return shlex.quote(str(script.absolute()))
    return shlex.join([sys.executable, "-m", "poolpilot.server"])


def rerun_command(argv: Sequence[str], token: str) -> str:
    """The exact command that applies a previewed change: the same arguments plus this confirm_token."""
    kept = [a for a in argv if not a.startswith(("confirm_token=", "confirm_token:="))]
    return " ".join([program(), shlex.join([*kept, f"confirm_token={token}"])])


def question(message: str) -> str:
    """The guard's elicitation text as one clean question for a terminal."""
    return _GUARD_TAIL.sub("", message).strip()


class Progress:
    """MCP progress notifications on stderr: one updating line on a terminal, else one line per step."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._open = False

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        share = f"{100 * progress / total:3.0f}%" if total else f"{progress:g}"
        text = f"{share} {message or ''}".rstrip()
        if self.tty:
            columns = shutil.get_terminal_size((80, 20)).columns
            width = columns - 1 if columns > 20 else 79  # a pty may report 0 columns
            self.stream.write("\r\x1b[K" + text[:width])
            self._open = True
        else:
            self.stream.write(f"progress: {text}\n")
        self.stream.flush()

    def done(self) -> None:
        """End the updating line so the result starts on a fresh one."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def quiet_broken_pipe() -> int:
    """After EPIPE on stdout (`poolpilot call … | head`): point stdout at /dev/null so the interpreter's final flush
    cannot raise again, and exit as a process killed by SIGPIPE would (128 + 13)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
