"""The fleet view's fan-out: every enabled provider at once, every location of a provider in parallel.

One task per provider (its face's fleet adapter), each bounded by `Settings.overview_timeout_s`; inside it the
adapter reads its locations in parallel. With latency L per request the whole view costs about 2·L (list, then
per-location reads), not one L per request.

Failures stay local (issue 12: "never one failure for all"): a provider that fails or times out becomes one
`ProviderFailure` carrying the error model, a location that fails becomes one naming that location, and every
other row is still returned. Programming errors are not caught here: they go up and become `internal_error`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.fleet import FleetAdapter, Overview, Sink
from poolpilot.server.kernel.state import AppState, ProviderClient

__all__ = ["adapters", "collect", "enabled_providers"]


def adapters(state: AppState) -> dict[str, FleetAdapter]:
    """The fleet adapters of the enabled providers whose client is open, in registry order."""
    return {
        name: face.fleet() for name, face in state.providers.items() if face.fleet is not None and name in state.clients
    }


def enabled_providers(state: AppState) -> list[str]:
    return list(adapters(state))


def _runner(
    adapter: FleetAdapter, client: ProviderClient, location: str | None, sink: Sink
) -> Callable[[], Awaitable[None]]:
    return lambda: adapter.collect(client, location, sink)


async def _bounded(provider: str, run: Callable[[], Awaitable[None]], sink: Sink, timeout_s: float) -> None:
    with anyio.move_on_after(timeout_s) as scope:
        try:
            await run()
        except PoolpilotError as exc:
            sink.fail(provider, None, exc.info)
    if scope.cancelled_caught:
        partial = any(r.provider == provider for r in sink.rows)
        sink.fail(
            provider,
            None,
            ErrorInfo(
                code="timeout",
                message=f"{provider} did not answer within {timeout_s:g} s"
                + ("; only the locations that answered in time are listed" if partial else ""),
                hint=f"Retry later, or narrow the view with provider={provider!r} and a location.",
                provider=provider,
            ),
        )


async def collect(state: AppState, *, provider: str | None = None, location: str | None = None) -> Overview:
    """Every pool of the enabled providers (or of `provider`), optionally only at `location` (id or name)."""
    found = adapters(state)
    chosen = [p for p in found if provider in (None, p)]
    sink = Sink()
    timeout_s = state.settings.overview_timeout_s
    async with anyio.create_task_group() as group:
        for name in chosen:
            run = _runner(found[name], state.clients[name], location, sink)
            group.start_soon(_bounded, name, run, sink, timeout_s)
    backends = {state.clients[p].backend for p in chosen}
    return Overview(
        backend=backends.pop() if len(backends) == 1 else "mixed",
        rows=sorted(sink.rows, key=lambda r: (r.provider, r.location_name or r.location, r.pool, r.pool_label or "")),
        errors=sorted(sink.errors, key=lambda e: (e.provider, e.location or "")),
    )
