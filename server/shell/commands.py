"""What the CLI subcommands do (kept apart from argument parsing so `poolpilot --help` stays instant)."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from typing import Any

import anyio

from poolpilot.server.kernel.config import Settings

__all__ = ["banner", "call_tool", "print_tools", "run_sandbox", "serve"]


def banner(settings: Settings) -> str:
    from poolpilot.server.kernel.guard import Safety
    from poolpilot.server.shell.app import select_tools

    toolsets, specs, _ = select_tools(settings)
    first_read = next((s.name for s in specs if s.safety is Safety.READ), "TOOL")
    lines = [f"poolpilot: {len(specs)} tools, transport {settings.transport}"]
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
            "  speaking MCP on stdin/stdout. Connect a client: `poolpilot config claude-desktop`",
            "  (or claude-code, cursor, vscode) prints its configuration.",
            f"  No client at hand: `poolpilot call {first_read}`",
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


def serve(settings: Settings) -> int:
    from poolpilot.server.shell.app import build_app
    from poolpilot.server.shell.transports import run_stdio, serve_http

    try:
        _preflight(settings)
        app = build_app(settings)
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
    from poolpilot.server.shell.app import select_tools
    from poolpilot.server.shell.registry import faces

    _, specs, hidden = select_tools(settings)
    rows = [{"name": s.name, "safety": s.safety.value, "title": s.title} for s in specs]
    if as_json:
        print(json.dumps({"tools": rows, "hidden": hidden}, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    print(f"{'TOOL'.ljust(width)}  {'CLASS'.ljust(11)}  WHAT")
    for r in rows:
        print(f"{r['name'].ljust(width)}  {r['safety'].ljust(11)}  {r['title']}")
    if hidden:
        toolsets = {face.name: {t.name for t in face.tools()} for face in faces()}
        off = sorted(n for n, names in toolsets.items() if names and names <= hidden.keys())
        why = {"read_only": "--read-only", "tool_not_allowed": "--toolsets/--tools"}
        rest = sorted({why[r] for name, r in hidden.items() if not any(name in toolsets[t] for t in off)})
        parts = [f"toolset {n} not enabled" for n in off] + [f"hidden by {r}" for r in rest]
        print(f"({len(hidden)} more: " + "; ".join(parts) + ")")
    return 0


async def _call(settings: Settings, tool: str, args: dict[str, Any]) -> tuple[bool, object]:
    from mcp import Client
    from mcp.client.session import ClientRequestContext
    from mcp_types import ElicitRequestParams, ElicitResult

    from poolpilot.server.shell.app import build_app

    app = build_app(settings)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()

    async def ask(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        print(params.message, file=sys.stderr)
        answer = await anyio.to_thread.run_sync(lambda: input("Proceed? [y/N] "))
        if answer.strip().lower() in ("y", "yes"):
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    async with Client(app, elicitation_callback=ask if interactive else None) as client:
        result = await client.call_tool(tool, args)
    payload: object = result.structured_content
    if payload is None:
        payload = [getattr(c, "text", str(c)) for c in result.content]
    return result.is_error, payload


def call_tool(settings: Settings, tool: str, args: dict[str, Any]) -> int:
    is_error, payload = anyio.run(_call, settings, tool, args)
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return 1 if is_error else 0


def run_sandbox(ns: argparse.Namespace) -> int:
    import uvicorn

    from poolpilot.server.kernel.sandbox import FaultPlan, Sandbox, SandboxOptions
    from poolpilot.server.shell.registry import faces

    plan = FaultPlan()
    for rule in ns.faults or ():
        plan.add(rule)
    knobs: dict[str, object] = {
        "job_seconds": (ns.job_seconds / 3, ns.job_seconds),
        "taurus_clock_skew_s": ns.clock_skew,
    }
    if ns.require_token:
        knobs["do_require_token"] = ns.require_token
    registered = faces()
    sandbox = Sandbox(Sandbox.fakes_of(registered, knobs=knobs), faults=plan)
    base = f"http://{ns.host}:{ns.port}"
    lines, env = ["poolpilot sandbox (fake provider APIs, demo data)"], {}
    for face in registered:
        if face.sandbox_banner is not None:
            more, wanted = face.sandbox_banner(base, SandboxOptions(knobs=knobs))
            lines += more
            env.update(wanted)
    pairs = " ".join(f"{k}={v}" for k, v in env.items())
    lines.append(f"  point poolpilot at it: {pairs} poolpilot serve")
    print("\n".join(lines), file=sys.stderr, flush=True)
    stops = []
    try:
        for face in registered:
            companion = face.companion
            if companion is None or not getattr(ns, f"with_{face.name}", False):
                continue
            missing = companion.missing()
            if missing:
                print(f"poolpilot: --with-{face.name} needs: " + "; ".join(missing), file=sys.stderr)
                return 2
            started, stop = companion.start()
            stops.append(stop)
            print("  " + " ".join(f"{k}='{v}'" for k, v in started.items()), file=sys.stderr, flush=True)
        # date_header=False: a fake may send its own (possibly skewed) Date for clock-skew diagnosis.
        uvicorn.run(sandbox, host=ns.host, port=ns.port, log_level="warning", date_header=False)
    finally:
        for stop in reversed(stops):
            stop()
    return 0
