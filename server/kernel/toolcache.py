"""tools/list without building the tools (issue 23: cold start).

Registering a tool with the SDK imports its module and builds its argument and result models and their JSON
schemas: most of poolpilot's start-up. The listed form of a tool is a function of the source code and of the
libraries that turn it into a schema, so it is kept in the user's cache directory
(`$XDG_CACHE_HOME/poolpilot`, `POOLPILOT_TOOL_CACHE`; `off` keeps none) under a key made of:

- the Python version and the files (path, size, modification time) of `mcp`, `mcp_types`, `pydantic` and
  `pydantic_core`, so an upgrade of any of them is a new key;
- every `.py` file under poolpilot's `server/` and `tools/` and under each registered provider's package (path,
  size, modification time), so any edit is a new key.

A start whose key has every listed tool serves tools/list from the file and loads a tool's module at its first
call; any other start builds the tools as before and writes what it built, so the next start finds it. The file
is read only when it belongs to this user and nobody else can write it (tools/list goes to the model: text
planted there would be an injection). Nothing here raises: an unreadable or unwritable cache is a slower start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ToolCache", "default_directory"]

log = logging.getLogger("poolpilot")

_KEEP = 4  # cache files kept, newest first

_LIBRARIES = ("mcp", "mcp_types", "pydantic", "pydantic_core", "pydantic_core._pydantic_core")


def default_directory(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return str(Path(base) / "poolpilot")


def _files(root: str) -> Iterable[os.DirEntry[str]]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                yield from _files(entry.path)
        elif entry.name.endswith(".py"):
            yield entry


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:missing;"
    return f"{path}:{st.st_size}:{st.st_mtime_ns};"


def _foreign(st: os.stat_result) -> bool:
    """Another user owns the file, or others may write it (no owner check on Windows)."""
    owner = os.getuid() if hasattr(os, "getuid") else st.st_uid
    return st.st_uid != owner or bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


class ToolCache:
    """The listed form of every tool built so far with this code and these libraries, by tool name."""

    def __init__(self, directory: str | Path, sources: Sequence[str]) -> None:
        self.directory = Path(directory)
        self.sources = tuple(sources)
        self._key: str | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            digest = hashlib.sha256(f"{sys.version}\n".encode())
            for name in _LIBRARIES:
                module = sys.modules.get(name)
                digest.update(_stamp(getattr(module, "__file__", None) or f"<{name}>").encode())
            for root in self.sources:
                for entry in _files(root):
                    digest.update(_stamp(entry.path).encode())
            self._key = digest.hexdigest()
        return self._key

    @property
    def path(self) -> Path:
        return self.directory / f"tools-{self.key[:32]}.json"

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                if _foreign(st):
                    log.warning("tool cache %s is not this user's alone: not used", self.path)
                    return {}
                data = json.loads(handle.read())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("key") != self.key or not isinstance(data.get("tools"), dict):
            return {}
        tools: dict[str, Any] = data["tools"]
        return tools

    def inspect(self) -> tuple[int, str | None]:
        """For doctor: how many tools this key's file holds, and why the cache cannot be used (None: it can)."""
        try:
            foreign = _foreign(os.stat(self.path))
        except OSError:
            foreign = False
        if foreign:
            return 0, "the file is not this user's alone, so it is not read"
        existing = next((p for p in (self.directory, *self.directory.parents) if p.exists()), Path("/"))
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            return len(self._read()), f"{existing} is not a writable directory"
        return len(self._read()), None

    def get(self, names: Sequence[str]) -> list[dict[str, Any]] | None:
        """The listed tools for `names`, in that order; None unless every one is there."""
        tools = self._read()
        if not all(isinstance(tools.get(n), dict) and tools[n].get("name") == n for n in names):
            return None
        return [tools[n] for n in names]

    def put(self, tools: Mapping[str, dict[str, Any]]) -> None:
        """Add `tools` to the file of this key (atomically; only the newest few other keys' files are kept)."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            merged = {**self._read(), **tools}
            text = json.dumps({"key": self.key, "tools": merged}, ensure_ascii=False, separators=(",", ":"))
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tools-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
            # Older keys' files go, but a few stay: two installs (or two checkouts) in use side by side would
            # otherwise rebuild at every start, each removing the other's file.
            files = sorted(self.directory.glob("tools-*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
            for old in files[_KEEP:]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("tool cache %s not written: %s", self.directory, exc)
