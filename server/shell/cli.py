"""`poolpilot serve | sandbox | tools | call | doctor | config`: one-line errors; exit 0 ok, 1 failed, 2 usage."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "sandbox", "live"], help="auto: live where credentials exist")
    p.add_argument("--confirm", choices=["auto", "token", "off"], help="how destructive calls are confirmed")
    p.add_argument("--read-only", action="store_true", default=None, help="register read tools only")
    p.add_argument("--toolsets", help="comma list of toolsets (`poolpilot tools` names them)")
    p.add_argument("--tools", help="comma list of tool names to allow")
    p.add_argument("--audit-log", help="audit log path, or - for stderr")
    p.add_argument("--allow-secrets", action="store_true", default=None, help="let connection passwords into results")
    p.add_argument("--fault", action="append", dest="faults", help="sandbox fault rule (repeatable), see README")


def _http_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transport", choices=["stdio", "sse", "streamable-http"])
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--auth-token-file", help="file holding the HTTP bearer token (or POOLPILOT_AUTH_TOKEN)")
    p.add_argument("--allowed-hosts", help="comma list of Host values accepted off loopback")
    p.add_argument("--allowed-origins", help="comma list of Origin values accepted")
    p.add_argument("--stateless", action="store_true", default=None, help="stateless streamable HTTP (replicas)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poolpilot", description="MCP server for managed connection pools.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", allow_abbrev=False, help="run the MCP server (stdio by default)")
    _common(serve)
    _http_options(serve)
    serve.add_argument("--sandbox-job-seconds", type=float, help="how long a sandbox async job takes (default 2-6)")

    sandbox = sub.add_parser("sandbox", allow_abbrev=False, help="serve the fake provider APIs on a port")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--fault", action="append", dest="faults", help="fault rule (repeatable), see README")
    sandbox.add_argument("--require-token", help="the bearer-token API accepts only this token (auth-failure tests)")
    sandbox.add_argument("--job-seconds", type=float, default=6.0, help="how long an async job takes")
    sandbox.add_argument("--clock-skew", type=float, default=0.0, help="signed API's Date header offset in seconds")
    from poolpilot.server.shell.registry import faces

    for face in faces():
        if face.companion is not None:
            sandbox.add_argument(
                f"--with-{face.name}", action="store_true", dest=f"with_{face.name}", help=face.companion.help
            )

    tools = sub.add_parser("tools", allow_abbrev=False, help="list the tools with their safety class")
    _common(tools)
    tools.add_argument("--json", action="store_true")

    call = sub.add_parser("call", allow_abbrev=False, help="call one tool through an in-process MCP client")
    _common(call)
    call.add_argument("tool")
    call.add_argument("args", nargs="*", metavar="key=value", help="arguments; values are JSON when they parse")

    doctor = sub.add_parser(
        "doctor", allow_abbrev=False, help="check configuration, credentials and endpoints (reads only)"
    )
    _common(doctor)
    _http_options(doctor)
    doctor.add_argument("--json", action="store_true", help="machine-readable report")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per endpoint (default 5)")

    config = sub.add_parser("config", allow_abbrev=False, help="print ready-to-paste client configuration")
    config.add_argument("client", choices=["claude-desktop", "claude-code", "cursor", "vscode"])
    config.add_argument("--read-only", action="store_true", help="register read tools only")
    form = config.add_mutually_exclusive_group()
    form.add_argument("--uvx", action="store_true", help="run through uvx instead of this installation")
    form.add_argument("--pipx", action="store_true", help="run through pipx instead of this installation")
    return parser


def _flags(ns: argparse.Namespace) -> dict[str, object]:
    flags = {
        k: v for k, v in vars(ns).items() if v is not None and k not in ("command", "tool", "args", "json", "timeout")
    }
    if "faults" in flags:
        flags["faults"] = ",".join(ns.faults)
    return flags


def _parse_args(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"poolpilot call: argument {pair!r} is not key=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _fail(message: str, code: int = 2) -> int:
    print(f"poolpilot: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    if ns.command == "serve":
        # Start-up allocates many long-lived objects (the SDK, schemas, models); collecting them while they are
        # created only costs time. `serve` freezes them and turns the collector back on once the app is built.
        gc.disable()
    from poolpilot.server.kernel.config import ConfigError
    from poolpilot.server.shell.app import load_settings

    try:
        if ns.command == "sandbox":
            from poolpilot.server.shell.commands import run_sandbox

            return run_sandbox(ns)
        if ns.command == "doctor":
            from poolpilot.server.shell.doctor import run_doctor

            return run_doctor(_flags(ns), as_json=ns.json, timeout_s=ns.timeout)
        if ns.command == "config":
            from poolpilot.server.shell.clientconfig import print_config

            return print_config(
                ns.client, read_only=ns.read_only, runner="uvx" if ns.uvx else "pipx" if ns.pipx else None
            )
        settings = load_settings(_flags(ns))
        if ns.command == "tools":
            from poolpilot.server.shell.commands import print_tools

            return print_tools(settings, as_json=ns.json)
        if ns.command == "call":
            from poolpilot.server.shell.commands import call_tool

            return call_tool(settings, ns.tool, _parse_args(ns.args))
        from poolpilot.server.shell.commands import serve

        return serve(settings)
    except ConfigError as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os._exit(main())
