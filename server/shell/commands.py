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
    from poolpilot.server.shell.app import select_tools

    toolsets, specs, _ = select_tools(settings)
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
            "  No client at hand: `poolpilot call digitalocean_list_clusters`",
        ]
    return "\n".join(lines)


def _preflight(settings: Settings) -> None:
    """Refuse what cannot work before speaking MCP: HTTP settings no client can reach, unusable PgBouncer DSNs."""
    from poolpilot.server.kernel.config import ConfigError
    from poolpilot.server.shell.transports import check_http

    check_http(settings)
    for instance in settings.pgbouncer:
        var = f"POOLPILOT_PGBOUNCER_{instance.name.upper().replace('-', '_')}_DSN"
        try:
            from poolpilot.tools.pgbouncer.admin import AdminConsole

            AdminConsole(instance.dsn)  # parses only; connects at the first call
        except ImportError:
            raise ConfigError(var, "needs psycopg", "pip install 'poolpilot[pgbouncer]'") from None
        except ValueError as exc:
            raise ConfigError(var, str(exc), "use e.g. postgresql://admin@host:6432/pgbouncer") from None


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
    from poolpilot.server.shell.app import load_toolsets, select_tools

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
        toolsets = {ts.name: {t.name for t in ts.tools} for ts in load_toolsets()}
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

    from poolpilot.server.kernel.sandbox import FaultPlan, Sandbox

    plan = FaultPlan()
    for rule in ns.faults or ():
        plan.add(rule)
    sandbox = Sandbox(
        faults=plan,
        do_require_token=ns.require_token,
        job_seconds=(ns.job_seconds / 3, ns.job_seconds),
        taurus_clock_skew_s=ns.clock_skew,
    )
    base = f"http://{ns.host}:{ns.port}"
    print(
        "poolpilot sandbox (fake provider APIs, demo data)\n"
        f"  DigitalOcean: {base}/v2  (any bearer token{' = ' + repr(ns.require_token) if ns.require_token else ''})\n"
        f"  TaurusDB:     {base}/v3  AK HPUAEXAMPLEAK0000001  SK exampleSecretKey0123456789abcdefghijklmn\n"
        "                project 054e292c9880d4992f02c0196d3ea468 (or X-Auth-Token: sandbox-iam-token)\n"
        f"  point poolpilot at it: POOLPILOT_DIGITALOCEAN_URL={base} DIGITALOCEAN_TOKEN=sandbox \\\n"
        f"    POOLPILOT_TAURUSDB_URL={base} HUAWEICLOUD_SDK_AK=HPUAEXAMPLEAK0000001 "
        "HUAWEICLOUD_SDK_SK=exampleSecretKey0123456789abcdefghijklmn \\\n"
        "    HUAWEICLOUD_SDK_PROJECT_ID=054e292c9880d4992f02c0196d3ea468 poolpilot serve",
        file=sys.stderr,
        flush=True,
    )
    pair = None
    if ns.with_pgbouncer:
        from poolpilot.tools.pgbouncer.local import missing_binaries, start_local_pair

        missing = missing_binaries()
        if missing:
            print("poolpilot: --with-pgbouncer needs: " + "; ".join(missing), file=sys.stderr)
            return 2
        pair = start_local_pair()
        print(
            f"  PgBouncer: POOLPILOT_PGBOUNCER_LOCAL_DSN='{pair.admin_dsn}' "
            f"POOLPILOT_PGBOUNCER_LOCAL_INI={pair.ini_path}",
            file=sys.stderr,
            flush=True,
        )
    try:
        # date_header=False: the TaurusDB fake sends its own (possibly skewed) Date for clock-skew diagnosis.
        uvicorn.run(sandbox, host=ns.host, port=ns.port, log_level="warning", date_header=False)
    finally:
        if pair is not None:
            pair.stop()
    return 0
