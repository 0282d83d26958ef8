"""What the CLI subcommands do (kept apart from argument parsing so `poolpilot --help` stays instant)."""

from __future__ import annotations

import gc
import json
import sys

import anyio

from poolpilot.server.kernel.config import Settings

__all__ = ["banner", "print_tools", "serve"]


def banner(settings: Settings) -> str:
    from poolpilot.server.kernel.guard import Safety
    from poolpilot.server.shell.app import plan_tools

    plan = plan_tools(settings)
    toolsets, names = plan.enabled, plan.names
    classes = {name: safety for group in plan.start for name, safety in group.safety.items()}
    first_read = next((n for n in names if classes[n] is Safety.READ), "TOOL")
    from poolpilot.server.shell.terminal import program

    lines = [f"poolpilot: {len(names)} tools, transport {settings.transport}"]
    for ts in toolsets:
        backend = settings.provider_backend(ts.name)
        note = "demo data, not production" if backend == "sandbox" else "REAL resources"
        lines.append(f"  {ts.name}: {backend} ({note})")
    lines.append(f"  confirm: {settings.confirm}; audit log: {settings.audit_log}")
    if settings.confirm == "off":
        lines.append("  WARNING: --confirm off: destructive tools act WITHOUT asking anyone.")
    if settings.read_only:
        lines.append("  read-only: write and destructive tools are not registered.")
    if settings.transport != "stdio":
        path = "/sse" if settings.transport == "sse" else "/mcp"
        lines.append(f"  listening on http://{settings.host}:{settings.port}{path}")
    else:
        lines += [
            f"  speaking MCP on stdin/stdout. Connect a client: `{program()} config claude-desktop`",
            "  (or claude-code, cursor, vscode) prints its configuration.",
            f"  No client at hand: `{program()} call {first_read}`",
        ]
    return "\n".join(lines)


def _preflight(settings: Settings) -> None:
    """Refuse what cannot work before speaking MCP: HTTP settings no client can reach, provider settings that cannot
    work (e.g. a DSN that does not parse)."""
    from poolpilot.server.kernel.config import complete
    from poolpilot.server.shell.registry import faces
    from poolpilot.server.shell.transports import check_http

    check_http(settings)
    settings = complete(settings, faces())
    for face in faces():
        face.preflight(settings.provider(face.name))


def serve(settings: Settings, *, keep: bool = False) -> int:
    """Serve MCP; `keep` (--sandbox-state) shares the sandbox state and the confirmation secret with `call`."""
    from poolpilot.server.shell.app import build_app
    from poolpilot.server.shell.stdio import run_stdio
    from poolpilot.server.shell.transports import serve_http

    try:
        _preflight(settings)
        from poolpilot.server.shell.calling import Local, persistent

        local = persistent(settings) if keep else Local(settings, None, None)
        settings = local.settings
        app = build_app(settings, sandbox=local.sandbox, store=local.store)
        text = banner(settings)
    finally:
        gc.freeze()  # what start-up built lives as long as the process: keep it out of every later collection
        gc.enable()

    def ready() -> None:  # printed once SIGINT/SIGTERM are handled, so a signal after it always exits cleanly
        print(text, file=sys.stderr, flush=True)

    if settings.transport == "stdio":
        anyio.run(run_stdio, app, ready)
    else:
        anyio.run(serve_http, app, settings, ready)
    return 0


def print_tools(settings: Settings, *, as_json: bool) -> int:
    from poolpilot.server.shell.app import plan_tools

    plan = plan_tools(settings)
    specs, hidden = plan.specs, plan.hidden
    rows = [{"name": s.name, "safety": s.safety.value, "title": s.title} for s in specs]
    if as_json:
        toolsets = [{"name": t.name, "on": t.on, "tools": list(t.tools)} for t in plan.toolsets]
        print(json.dumps({"tools": rows, "hidden": hidden, "toolsets": toolsets}, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    print(f"{'TOOL'.ljust(width)}  {'CLASS'.ljust(11)}  WHAT")
    for r in rows:
        print(f"{r['name'].ljust(width)}  {r['safety'].ljust(11)}  {r['title']}")
    if hidden:
        off = [t for t in plan.toolsets if not t.on and t.tools]
        covered = {name for t in off for name in t.tools}
        why = {"read_only": "--read-only", "tool_not_allowed": "--toolsets/--tools", "toolset_off": "--toolsets"}
        rest = sorted({why[r] for name, r in hidden.items() if name not in covered})
        parts = [f"toolset {t.name} not enabled" for t in off] + [f"hidden by {r}" for r in rest]
        print(f"({len(hidden)} more: " + "; ".join(parts) + ")")
    return 0
