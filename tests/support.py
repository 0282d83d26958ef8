"""Test seams: a manual clock and an instant sleep that advances it, and a sandbox-backed server factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client

from server.app import PoolpilotServer, build_app
from server.config import Settings
from server.sandbox import FaultPlan, Sandbox

__all__ = ["ManualClock", "make_app", "open_client", "sandbox_settings"]


class ManualClock:
    """Time that moves only when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sandbox_settings(audit: Path, **overrides: Any) -> Settings:
    return Settings(backend="sandbox", audit_log=str(audit), **overrides)


def make_app(
    audit: Path, *, sandbox: Sandbox | None = None, clock: ManualClock | None = None, **overrides: Any
) -> tuple[PoolpilotServer, Sandbox, ManualClock]:
    clock = clock or ManualClock()
    sandbox = sandbox or Sandbox(clock=clock, sleep=clock.sleep, faults=FaultPlan())
    app = build_app(sandbox_settings(audit, **overrides), sandbox=sandbox, clock=clock, sleep=clock.sleep)
    return app, sandbox, clock


@asynccontextmanager
async def open_client(app: PoolpilotServer, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(app, raise_exceptions=True, **kwargs) as client:
        yield client
