"""`poolpilot serve | sandbox | tools | call | export | plan | apply | doctor | config`: one-line errors; exit 0
ok, 1 failed, 2 usage (`plan` and `apply` add their own meaning of 2: see server/shell/poolscmd.py)."""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line naming the fix, not the whole usage (argparse's default)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Only the first option's name: what follows it may be a secret typed where it does not belong.
            words = message.split(":", 1)[1].split()
            message = f"unknown option {next((w.split('=')[0] for w in words if w.startswith('-')), 'or argument')}"
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("poolpilot")
    except PackageNotFoundError:
        return "0.0.0"


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("a port is a number from 0 to 65535")
    return int(text)


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
    p.add_argument("--port", type=_port, help="HTTP port (default 8000)")
    p.add_argument("--auth-token-file", help="file holding the HTTP bearer token (or POOLPILOT_AUTH_TOKEN)")
    p.add_argument("--allowed-hosts", help="comma list of Host values accepted off loopback")
    p.add_argument("--allowed-origins", help="comma list of Origin values accepted")
    p.add_argument("--stateless", action="store_true", default=None, help="stateless streamable HTTP (replicas)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poolpilot", description="MCP server for managed connection pools.", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"poolpilot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", allow_abbrev=False, help="run the MCP server (stdio by default)")
    _common(serve)
    _http_options(serve)
    serve.add_argument("--sandbox-job-seconds", type=float, help="how long a sandbox async job takes (default 2-6)")
    serve.add_argument(
        "--sandbox-state", action="store_true", help="share the sandbox state and confirmation secret with `call`"
    )

    sandbox = sub.add_parser("sandbox", allow_abbrev=False, help="serve the fake provider APIs on a port")
    sandbox.add_argument(
        "action", nargs="?", choices=["reset"], help="reset: forget the state `call` keeps (and its secret)"
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=_port, default=8080)
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
    tools.add_argument("tool", nargs="?", help="print this tool's arguments and safety class")

    call = sub.add_parser(
        "call",
        allow_abbrev=False,
        help="call one tool through an in-process MCP client",
        epilog="`poolpilot call TOOL --help` prints the tool's arguments. Values: key=value is typed by the tool's "
        "schema (strings stay strings); key:=JSON passes JSON; key=@file.json reads a JSON file.",
    )
    _common(call)
    call.add_argument("--sandbox-job-seconds", type=float, help="how long a sandbox async job takes (default 2-6)")
    call.add_argument(
        "--sandbox-state",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the sandbox state and confirmation secret between calls (default: on)",
    )
    call.add_argument("tool", help="tool name (`poolpilot tools` lists them)")
    call.add_argument("args", nargs=argparse.REMAINDER, metavar="key=value", help="tool arguments, or --help")

    export = sub.add_parser("export", allow_abbrev=False, help="print the pools as a desired-state document")
    _common(export)
    export.add_argument("--provider", help="only this provider")
    export.add_argument("--location", help="only this location (cluster, instance)")
    export.add_argument("--yaml", action="store_true", help="YAML instead of JSON (needs the yaml extra)")
    plan = sub.add_parser(
        "plan", allow_abbrev=False, help="diff a document against the pools (exit 0 no changes, 2 changes, 1 error)"
    )
    _common(plan)
    plan.add_argument("file", help="desired-state document (.json, .yaml with the yaml extra, - for stdin)")
    plan.add_argument("--json", action="store_true", help="the whole plan as JSON")
    apply = sub.add_parser("apply", allow_abbrev=False, help="apply a document after one confirmation")
    _common(apply)
    apply.add_argument("file", help="desired-state document (.json, .yaml with the yaml extra, - for stdin)")
    apply.add_argument("--plan-id", help="the plan_id reviewed with `poolpilot plan` (automation)")
    apply.add_argument("--confirm-token", help="the token a previous `apply` printed for that plan_id")
    apply.add_argument("--json", action="store_true", help="the result as JSON")

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
        k: v
        for k, v in vars(ns).items()
        if v is not None
        and k
        not in (
            "command",
            "tool",
            "args",
            "json",
            "timeout",
            "sandbox_state",
            "action",
            "provider",
            "location",
            "yaml",
            "file",
            "plan_id",
            "confirm_token",
        )
    }
    if "faults" in flags:
        flags["faults"] = ",".join(ns.faults)
    return flags


def _fail(message: str, code: int = 2) -> int:
    print(f"poolpilot: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except BrokenPipeError:  # `poolpilot call … | head`: the reader left, which is not an error worth a traceback
        from poolpilot.server.shell.terminal import quiet_broken_pipe

        return quiet_broken_pipe()


def _call_options(ns: argparse.Namespace) -> tuple[list[str], bool]:
    """Split what follows the tool name: key=value pairs, `--help`, and call options given after the tool."""
    pairs = [a for a in ns.args if not a.startswith("-")]
    options = [a for a in ns.args if a.startswith("-")]
    wants_help = any(a in ("-h", "--help") for a in options)
    options = [a for a in options if a not in ("-h", "--help")]
    if options:
        from poolpilot.server.kernel.text import quote
        from poolpilot.server.shell.callargs import UsageError
        from poolpilot.server.shell.terminal import program

        option = options[0].split("=")[0]
        plain = re.fullmatch(r"--?[A-Za-z][A-Za-z0-9_-]{0,40}", option) is not None  # else it may be a value: not shown
        example = f" (e.g. {option.lstrip('-').replace('-', '_')}=…)" if plain else ""
        raise UsageError(
            f"{option if plain else 'an option'} after the tool name: options go before the tool, tool arguments "
            f"are key=value{example}; `{program()} call {quote(ns.tool)} --help` lists them"
        )
    return pairs, wants_help


def _main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    if ns.command == "serve":
        # Start-up allocates many long-lived objects (the SDK, schemas, models); collecting them while they are
        # created only costs time. `serve` freezes them and turns the collector back on once the app is built.
        gc.disable()
    from poolpilot.server.kernel.config import ConfigError
    from poolpilot.server.shell.app import load_settings
    from poolpilot.server.shell.callargs import UsageError

    try:
        if ns.command == "sandbox":
            from poolpilot.server.shell.sandboxcmd import reset_state, run_sandbox

            return reset_state() if ns.action == "reset" else run_sandbox(ns)
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
            from poolpilot.server.shell.calling import print_tool_help
            from poolpilot.server.shell.commands import print_tools

            return print_tool_help(settings, ns.tool) if ns.tool else print_tools(settings, as_json=ns.json)
        if ns.command == "call":
            from poolpilot.server.shell.calling import call_tool, print_tool_help

            pairs, wants_help = _call_options(ns)
            if wants_help:
                return print_tool_help(settings, ns.tool)
            return call_tool(settings, ns.tool, pairs, argv=argv, keep=ns.sandbox_state)
        if ns.command in ("export", "plan", "apply"):
            from poolpilot.server.shell import poolscmd

            if ns.command == "export":
                return poolscmd.run_export(settings, provider=ns.provider, location=ns.location, as_yaml=ns.yaml)
            if ns.command == "plan":
                return poolscmd.run_plan(settings, ns.file, as_json=ns.json)
            return poolscmd.run_apply(
                settings, ns.file, plan_id=ns.plan_id, token=ns.confirm_token, argv=argv, as_json=ns.json
            )
        from poolpilot.server.shell.commands import serve

        return serve(settings, keep=ns.sandbox_state)
    except UsageError as exc:
        print(f"poolpilot {ns.command}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os._exit(main())
