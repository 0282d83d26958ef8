"""Append-only JSON-lines audit log of every attempted write or destructive call.

One line per attempt, written with a single `write(2)` on an `O_APPEND` descriptor so concurrent appends
never interleave. A call that is about to change something first writes a `started` line: if that write
fails, the mutation is refused (`audit_failed`), so nothing changes without a trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.redact import Redactor

__all__ = ["AuditLog", "rejected_arguments"]


def rejected_arguments(arguments: Mapping[str, object], field: str | None) -> dict[str, object]:
    """The arguments of a call refused for a bad argument, as the audit log keeps them: the rejected one (every
    one, when the error does not name a single argument) as its SHA-256 prefix and length, never its value (it
    may be a secret pasted into the wrong field, or text made to mislead whoever reads the log)."""
    name = (field or "").split(".")[0]
    hidden = {name} if name in arguments else set(arguments)
    out: dict[str, object] = {}
    for key, value in arguments.items():
        if key not in hidden:
            out[key] = value
            continue
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        out[key] = {"rejected": True, "sha256": digest, "length": len(value) if isinstance(value, str) else len(text)}
    return out


class AuditLog:
    def __init__(self, path: str, redactor: Redactor, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._redactor = redactor
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        if self.path == "-":
            return sys.stderr.fileno()
        if self._fd is None:
            target = Path(self.path).expanduser()
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def check_writable(self) -> None:
        """Raise `OSError` when the log cannot be opened (used by `doctor` and at start-up)."""
        self._open()

    def write(self, record: Mapping[str, object]) -> None:
        """Append one redacted line; raises `PoolpilotError(audit_failed)` when it cannot."""
        entry = {"time": datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds"), **record}
        line = json.dumps(self._redactor.value(entry), separators=(",", ":"), default=str) + "\n"
        data = line.encode()
        try:
            with self._lock:
                fd = self._open()
                written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes)")
        except OSError as exc:
            raise PoolpilotError(
                ErrorInfo(
                    code="audit_failed",
                    message=f"the audit log {self.path} could not be written ({exc.strerror or exc}); "
                    "nothing was changed",
                    hint="Ask the operator to fix the audit log path (--audit-log) or its disk, then retry.",
                )
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
