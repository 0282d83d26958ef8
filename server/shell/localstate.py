"""The CLI's state directory: the persistent sandbox's state and the per-user confirmation secret.

`$XDG_STATE_HOME/poolpilot/` (default `~/.local/state/poolpilot/`), mode 0700, files 0600:

- `confirm-secret`: 32 random bytes (hex) that sign confirmation tokens, so a token printed by one `poolpilot
  call` is accepted by the next.
- `nonces.json`: the confirmation tokens already used and until when (so a token works once across processes).
- `sandbox.json`: the embedded sandbox's state, replaced atomically (write a temp file, fsync, rename) while
  `sandbox.lock` is held with flock, so concurrent calls neither corrupt it nor lose each other's changes.

Nothing else is kept: live credentials are read from the environment on every call, never written here.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from poolpilot.server.kernel.config import ConfigError

if TYPE_CHECKING:
    from poolpilot.server.kernel.locks import Distributed

__all__ = ["FileNonces", "FileStore", "confirm_secret", "reset", "state_dir"]

SECRET_FILE = "confirm-secret"
STATE_FILE = "sandbox.json"
NONCE_FILE = "nonces.json"
LOCK_FILE = "sandbox.lock"


def state_dir(create: bool = True) -> Path:
    """`$XDG_STATE_HOME/poolpilot` (a relative XDG_STATE_HOME is ignored, as the XDG spec says)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    path = root / "poolpilot"
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = path.stat()
        except OSError as exc:
            raise ConfigError(
                "XDG_STATE_HOME", f"cannot create {path} ({exc.strerror})", "set it to a writable dir"
            ) from None
        if info.st_uid != os.geteuid():
            raise ConfigError("XDG_STATE_HOME", f"{path} belongs to another user", "set it to a dir of your own")
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)  # ours, and it holds a signing secret: nobody else may list or read it
    return path


def _private(path: Path, what: str) -> None:
    info = path.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ConfigError(
            str(path), f"the {what} is readable by others or not yours", "run `poolpilot sandbox reset` to start over"
        )


def confirm_secret(directory: Path) -> bytes:
    """The per-user secret, created on first use. Written to a temp file and hard-linked into place, which fails
    if it exists: two first calls racing agree on one secret, and nobody ever reads a half-written one."""
    path = directory / SECRET_FILE
    if not path.exists():
        tmp = directory / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its secret
        finally:
            tmp.unlink(missing_ok=True)
    _private(path, "confirmation secret")
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 32:
        raise ConfigError(str(path), "the confirmation secret is damaged", "run `poolpilot sandbox reset`")
    return text.encode()


def reset(directory: Path) -> list[str]:
    """Forget the sandbox state and the secret (outstanding tokens stop working); returns what was removed."""
    removed = []
    lock = _open_lock(directory)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in (STATE_FILE, SECRET_FILE, NONCE_FILE):
            try:
                (directory / name).unlink()
                removed.append(name)
            except FileNotFoundError:
                pass
    finally:
        os.close(lock)
    return removed


def _open_lock(directory: Path) -> int:
    return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)


_Identity = tuple[int, int, int, int] | None


def _identity(path: Path) -> _Identity:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _replace(directory: Path, name: str, data: object) -> None:
    """Write `name` whole or not at all: a temp file, fsync, rename (mode 0600)."""
    tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class FileNonces:
    """The kernel's `StateStore` for the CLI: used token nonces in `nonces.json`, claimed under the same flock as
    the sandbox state. No distributed lease: each process's TargetLocks stand, and each sandbox request is atomic."""

    lease: Distributed | None = None

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock

    async def ready(self) -> None:
        return None

    def _claim(self, nonce: str, ttl_s: float) -> bool:
        fd = _open_lock(self.directory)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            now = self._clock()
            used = {n: t for n, t in self._read().items() if t >= now}
            if nonce in used:
                return False
            used[nonce] = now + ttl_s
            _replace(self.directory, NONCE_FILE, used)
            return True
        finally:
            os.close(fd)

    def _read(self) -> dict[str, float]:
        try:
            data: object = json.loads((self.directory / NONCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(n): float(t) for n, t in data.items() if isinstance(t, int | float)}

    async def claim(self, nonce: str, ttl_s: float) -> bool:
        return await anyio.to_thread.run_sync(self._claim, nonce, ttl_s)

    async def used(self, nonce: str) -> bool:
        found = await anyio.to_thread.run_sync(self._read)
        return found.get(nonce, float("-inf")) >= self._clock()

    async def aclose(self) -> None:
        return None


class FileStore:
    """`SandboxStore` on `sandbox.json`: flock on `sandbox.lock` (released if the process dies), atomic rename."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self._lock_fd: int | None = None
        self._seen: _Identity | str = "never"

    def acquire(self) -> None:
        fd = _open_lock(self.directory)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def load(self) -> object | None:
        seen = _identity(self.path)
        if seen == self._seen:
            return None
        self._seen = seen
        if seen is None:
            return {}  # never saved, or reset since: the seeds
        _private(self.path, "sandbox state")
        try:
            data: object = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # unreadable: start from the seeds rather than fail every call
        return data

    def save(self, state: dict[str, object]) -> None:
        _replace(self.directory, STATE_FILE, state)
        self._seen = _identity(self.path)
