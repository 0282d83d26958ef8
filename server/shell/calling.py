"""`poolpilot call` and `poolpilot tools TOOL`: one tool through an in-process MCP client.

Each `call` is its own process. So that a preview's confirm_token works in the next one, and a change made by one
is seen by the next, `call` keeps the per-user confirmation secret and the embedded sandbox's state in the state
directory (`localstate.py`); `--no-sandbox-state` gives a fresh, forgotten sandbox instead. Live backends keep
nothing there but the secret.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import anyio

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.text import quote
from poolpilot.server.shell.callargs import UsageError, did_you_mean, parse_pairs, tool_help
from poolpilot.server.shell.terminal import Progress, program, question, rerun_command

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import Tool

    from poolpilot.server.kernel.pipeline import PoolpilotServer
    from poolpilot.server.kernel.sandbox import Sandbox
    from poolpilot.server.shell.localstate import FileNonces

__all__ = ["call_tool", "persistent", "print_tool_help"]


class Local(NamedTuple):
    """What `call` (and `serve --sandbox-state`) run with: the settings signed with the per-user secret, the
    sandbox on the state directory (None when no provider uses one), the used-nonce store (None: the default)."""

    settings: Settings
    sandbox: Sandbox | None
    store: FileNonces | None


def persistent(settings: Settings) -> Local:
    """The secret from the state directory unless POOLPILOT_CONFIRM_SECRET is set; used nonces there unless a
    shared store (POOLPILOT_STATE_URL) keeps them; the sandbox there when a provider uses it."""
    from poolpilot.server.shell.app import build_sandbox, plan_tools
    from poolpilot.server.shell.localstate import FileNonces, FileStore, confirm_secret, state_dir

    directory = state_dir()
    if not settings.confirm_secret:
        settings = dataclasses.replace(settings, confirm_secret=confirm_secret(directory))
    store = FileNonces(directory) if settings.state_url is None else None
    enabled = plan_tools(settings).enabled
    if not any(f.sandbox is not None and settings.provider_backend(f.name) == "sandbox" for f in enabled):
        return Local(settings, None, store)
    sandbox = build_sandbox(settings)
    sandbox.store = FileStore(directory)
    return Local(settings, sandbox, store)


def _safety(app: PoolpilotServer, name: str) -> str:
    safety = app.safety.get(name)
    return str(safety.value) if safety is not None else "unknown"


async def _lookup(app: PoolpilotServer, client: Client, name: str) -> Tool | None:
    listed = (await client.list_tools()).tools
    found = next((t for t in listed if t.name == name), None)
    if found is None and name not in app.hidden:
        names = [t.name for t in listed] + list(app.hidden)
        suggestion = did_you_mean(name, names)
        raise UsageError(f"no tool named {quote(name)}{suggestion} (`{program()} tools` lists them)")
    return found


async def _outside(lookup: Awaitable[Tool | None]) -> Tool | UsageError | None:
    """The lookup's tool, or its UsageError as a value, to be raised once the client is closed."""
    try:
        return await lookup
    except UsageError as exc:
        return exc


def with_toolset_of(settings: Settings, name: str) -> Settings:
    """An operator who names a tool gets it: the toolset it belongs to is turned on for this one call when it is
    off by default (off-by-default toolsets keep an agent's tool list short; they are no permission). An explicit
    --toolsets, --tools and --read-only still decide."""
    if settings.toolsets is not None:
        return settings
    from poolpilot.server.shell.app import default_toolsets
    from poolpilot.server.shell.registry import faces

    on = default_toolsets(settings)
    for face in faces():
        if face.name in on and name in face.index:
            toolset = face.toolset_of(name)
            return settings if toolset in on else dataclasses.replace(settings, toolsets=(*on, toolset))
    return settings


async def _help(settings: Settings, name: str) -> str:
    from mcp import Client

    from poolpilot.server.shell.app import build_app

    app = build_app(with_toolset_of(settings, name))
    async with Client(app) as client:
        tool = await _outside(_lookup(app, client, name))
    if isinstance(tool, UsageError):
        raise tool  # raised here, not inside the client's task group (it would arrive wrapped in an ExceptionGroup)
    if tool is None:
        raise UsageError(f"{name} is not enabled here ({app.hidden[name]}); `{program()} tools` says why")
    return tool_help(name, tool.description or "", _safety(app, name), tool.input_schema, program())


def print_tool_help(settings: Settings, name: str) -> int:
    print(anyio.run(_help, settings, name))
    return 0


async def _call(local: Local, name: str, pairs: Sequence[str], progress: Progress) -> tuple[bool, object]:
    from mcp import Client
    from mcp.client.session import ClientRequestContext
    from mcp_types import ElicitRequestParams, ElicitResult

    from poolpilot.server.shell.app import build_app

    app = build_app(local.settings, sandbox=local.sandbox, store=local.store)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()

    async def ask(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        progress.done()
        print(question(params.message), file=sys.stderr)
        answer = await anyio.to_thread.run_sync(lambda: input("Apply this change? [y/N] "))
        if answer.strip().lower() in ("y", "yes"):
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    async with Client(app, elicitation_callback=ask if interactive else None) as client:
        tool = await _outside(_lookup(app, client, name))
        if isinstance(tool, UsageError):
            failed: UsageError | None = tool
        else:
            try:
                args = parse_pairs(name, pairs, tool.input_schema) if tool is not None else {}
                failed = None
            except UsageError as exc:
                failed = exc
        if failed is None:
            try:
                result = await client.call_tool(name, args, progress_callback=progress)
            finally:
                progress.done()
    if failed is not None:
        raise failed  # outside the client's task group, which would wrap it in an ExceptionGroup
    payload: object = result.structured_content
    if payload is None:
        payload = [getattr(c, "text", str(c)) for c in result.content]
    return result.is_error, payload


def call_tool(settings: Settings, name: str, pairs: Sequence[str], *, argv: Sequence[str], keep: bool) -> int:
    """Call `name`; prints the result as JSON, and on a preview the exact command that applies it."""
    local = persistent(settings) if keep else Local(settings, None, None)
    settings = local.settings
    local = local._replace(settings=with_toolset_of(settings, name))
    is_error, payload = anyio.run(_call, local, name, pairs, Progress())
    print(json.dumps(payload, indent=2, ensure_ascii=False), flush=True)
    if isinstance(payload, dict) and payload.get("outcome") == "confirmation_required" and payload.get("confirm_token"):
        token = str(payload["confirm_token"])
        if keep or settings.confirm_secret:
            print(f"To apply it, run:\n  {rerun_command(argv, token)}", file=sys.stderr)
        else:
            print("Not kept: without --sandbox-state this token dies with this process.", file=sys.stderr)
    return 1 if is_error else 0
