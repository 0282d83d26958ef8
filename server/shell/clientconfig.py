"""`poolpilot config CLIENT`: ready-to-paste configuration for Claude Desktop, Claude Code, Cursor and VS Code.

The variables the user has set are named, never copied: secrets become placeholders (`<your NAME>`, `"$NAME"` in
the Claude Code command line, a password prompt in VS Code). Only settings that cannot hold a secret (region,
project id, URLs without user info, paths, choices) keep their value.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from poolpilot.server.kernel.provider import EnvVar
from poolpilot.server.shell.registry import faces

__all__ = ["CLIENTS", "Launch", "config_text", "launch_command", "print_config"]

Client = Literal["claude-desktop", "claude-code", "cursor", "vscode"]
Runner = Literal["uvx", "pipx"]
CLIENTS: tuple[Client, ...] = ("claude-desktop", "claude-code", "cursor", "vscode")
SERVER_NAME = "poolpilot"

# The core's own variables; the providers' come from their faces (registry order). A variable is included when
# set and non-empty.
_SECRET = ("POOLPILOT_CONFIRM_SECRET",)
_PLAIN = (
    "POOLPILOT_BACKEND",
    "POOLPILOT_TOOLSETS",
    "POOLPILOT_TOOLS",
    "POOLPILOT_CONFIRM",
    "POOLPILOT_AUDIT_LOG",
)
_WHERE = {
    "claude-desktop": "claude_desktop_config.json (Settings > Developer > Edit Config)",
    "claude-code": "a shell (add --scope user to use it in every project)",
    "cursor": "~/.cursor/mcp.json (or .cursor/mcp.json in a project)",
    "vscode": ".vscode/mcp.json (or the user profile's mcp.json)",
}


class Launch:
    """How the client starts the server: a command, its arguments and any environment it needs itself."""

    def __init__(self, command: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.command = command
        self.args = args
        self.env = env or {}


def launch_command(runner: Runner | None = None, *, read_only: bool = False) -> Launch:
    """This installation's absolute `poolpilot`, else this Python with `-m poolpilot.server`; or the uvx/pipx form."""
    extra = ["--read-only"] if read_only else []
    if runner == "uvx":
        return Launch("uvx", [SERVER_NAME, "serve", *extra])
    if runner == "pipx":
        return Launch("pipx", ["run", SERVER_NAME, "serve", *extra])
    beside = Path(sys.executable).parent / SERVER_NAME
    script = str(beside) if beside.is_file() else shutil.which(SERVER_NAME)
    if script:
        return Launch(str(Path(script).absolute()), ["serve", *extra])
    # No script beside this Python: the package is importable here (this code runs from it), so run it as a module.
    return Launch(str(Path(sys.executable).absolute()), ["-m", "poolpilot.server", "serve", *extra])


def _plain_value(name: str, value: str) -> bool:
    if name.endswith("_DSN"):
        return False
    if name.endswith("_URL"):
        return "@" not in urlsplit(value).netloc
    return name in _PLAIN or any(not v.secret and _matches(v, name) for f in faces() for v in f.env)


def _matches(var: EnvVar, name: str) -> bool:
    pattern = re.escape(var.name).replace(re.escape("<NAME>"), "[A-Z0-9_]+")
    return re.fullmatch(pattern, name) is not None


def _provider_vars(env: Mapping[str, str], *, secret: bool | None = None) -> list[str]:
    """The set variables the providers' faces declare (a `<NAME>` variable once per instance), in face order."""
    found: list[str] = []
    for face in faces():
        for var in face.env:
            if secret is not None and var.secret is not secret:
                continue
            found += sorted(n for n in env if env[n] and _matches(var, n) and n not in found)
    return found


def _user_vars(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(name, value) for plain settings, (name, None) for secrets, in a stable order."""
    names = [
        *_provider_vars(env, secret=True),
        *[n for n in _SECRET if env.get(n)],
        *_provider_vars(env, secret=False),
        *[n for n in _PLAIN if env.get(n)],
    ]
    return [(n, env[n] if _plain_value(n, env[n]) else None) for n in names]


def _placeholder(name: str) -> str:
    return f"<your {name}>"


def _input_id(name: str) -> str:
    return name.lower().replace("_", "-")


def _json_config(client: Client, launch: Launch, user: list[tuple[str, str | None]]) -> dict[str, object]:
    if client == "vscode":
        env = {**launch.env, **{n: v if v is not None else f"${{input:{_input_id(n)}}}" for n, v in user}}
        server: dict[str, object] = {"type": "stdio", "command": launch.command, "args": launch.args}
        if env:
            server["env"] = env
        inputs = [
            {"type": "promptString", "id": _input_id(n), "description": n, "password": True}
            for n, v in user
            if v is None
        ]
        return {"inputs": inputs, "servers": {SERVER_NAME: server}}
    env = {**launch.env, **{n: v if v is not None else _placeholder(n) for n, v in user}}
    entry: dict[str, object] = {"command": launch.command, "args": launch.args}
    if env:
        entry["env"] = env
    return {"mcpServers": {SERVER_NAME: entry}}


def _claude_code(launch: Launch, user: list[tuple[str, str | None]]) -> str:
    parts = ["claude", "mcp", "add", "--transport", "stdio"]
    for name, value in [*launch.env.items(), *user]:
        # A secret stays a shell reference: the shell expands it when the user runs the line, we never print it.
        parts += ["--env", shlex.quote(f"{name}={value}") if value is not None else f'{name}="${name}"']
    parts += [SERVER_NAME, "--", shlex.quote(launch.command), *(shlex.quote(a) for a in launch.args)]
    return " ".join(parts)


def config_text(
    client: Client,
    *,
    env: Mapping[str, str],
    read_only: bool = False,
    runner: Runner | None = None,
    launch: Launch | None = None,
) -> str:
    """The configuration for `client`: JSON, or the `claude mcp add` command line for Claude Code."""
    launch = launch or launch_command(runner, read_only=read_only)
    user = _user_vars(env)
    if client == "claude-code":
        return _claude_code(launch, user)
    return json.dumps(_json_config(client, launch, user), indent=2)


def print_config(client: str, *, read_only: bool, runner: str | None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    chosen = next(c for c in CLIENTS if c == client)
    form: Runner | None = "uvx" if runner == "uvx" else "pipx" if runner == "pipx" else None
    print(config_text(chosen, env=env, read_only=read_only, runner=form))
    user = _user_vars(env)
    secrets = [n for n, v in user if v is None]
    notes = [f"# paste into {_WHERE[chosen]}"]
    if secrets and chosen in ("claude-desktop", "cursor"):
        notes.append("# replace each <your NAME> with the value (" + ", ".join(secrets) + ")")
    if not _provider_vars(env, secret=True):
        notes.append("# no provider credentials in this environment: this runs the sandbox (demo data)")
    print("\n".join(notes), file=sys.stderr)
    return 0
