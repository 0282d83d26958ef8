"""One writer per target: mutations of the same target (a pool, a cluster's connection budget, a proxy, an ini
file) run one at a time inside this process.

A guarded tool holds its target's lock from the fresh re-read right before sending until the provider answered,
so two confirmed calls cannot both act on the state they were shown (lost update), and a budget check and the
request that consumes the budget cannot interleave with another's (issue 17). Keys are plain strings chosen by
the provider (`<provider>:cluster:<id>`); several keys are taken in sorted order, so two callers that
need overlapping sets cannot deadlock. Across replicas a shared store can carry the same keys (`Distributed`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Protocol

import anyio

__all__ = ["Distributed", "TargetLocks"]


class Distributed(Protocol):
    """A lock that spans replicas (the shared store, server/kernel/store.py), taken after the in-process one."""

    def hold(self, key: str) -> AbstractAsyncContextManager[object]: ...


class TargetLocks:
    def __init__(self, distributed: Distributed | None = None) -> None:
        self._locks: dict[str, anyio.Lock] = {}
        self._users: dict[str, int] = {}
        self.distributed = distributed

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._one(key))
                if self.distributed is not None:
                    await stack.enter_async_context(self.distributed.hold(key))
            yield

    @asynccontextmanager
    async def _one(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, anyio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody holds or waits: forget it, so keys do not pile up
                del self._users[key]
                del self._locks[key]

    def held(self) -> int:
        """How many keys are held or awaited now (tests check that nothing leaks)."""
        return len(self._locks)
