"""`poolpilot config CLIENT`: parseable output that names the user's variables and never copies a secret."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from poolpilot.server.shell.clientconfig import CLIENTS, Client, config_text, launch_command

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "DIGITALOCEAN_TOKEN": "dop_v1_secretvalue0123456789",
    "HUAWEICLOUD_SDK_AK": "HPUAEXAMPLEAK0000001",
    "HUAWEICLOUD_SDK_SK": "exampleSecretKey0123456789abcdefghijklmn",
    "POOLPILOT_CONFIRM_SECRET": "confirm-secret-" + "x" * 32,
    "POOLPILOT_PGBOUNCER_MAIN_DSN": "postgresql://admin:pgb-password-42@db.internal:6432/pgbouncer",
}
PLAIN = {"HUAWEICLOUD_SDK_REGION": "cn-north-4", "HUAWEICLOUD_SDK_PROJECT_ID": "054e292c9880d4992f02c0196d3ea468"}
ENV = {**SECRETS, **PLAIN, "UNRELATED": "keep-out"}


def _server_entry(client: Client, text: str) -> dict[str, object]:
    data = json.loads(text)
    servers = data["servers"] if client == "vscode" else data["mcpServers"]
    entry: dict[str, object] = servers["poolpilot"]
    return entry


@pytest.mark.parametrize("client", [c for c in CLIENTS if c != "claude-code"])
def test_config_json_clients_parse_and_name_every_variable_without_its_secret(client: Client) -> None:
    text = config_text(client, env=ENV)
    entry = _server_entry(client, text)
    env = entry["env"]
    assert isinstance(env, dict)
    assert set(SECRETS) | set(PLAIN) <= set(env)
    assert "UNRELATED" not in env
    assert env["HUAWEICLOUD_SDK_REGION"] == "cn-north-4"
    for value in SECRETS.values():
        assert value not in text
    assert "pgb-password-42" not in text


def test_config_vscode_asks_for_secrets_with_password_prompts() -> None:
    data = json.loads(config_text("vscode", env=ENV))
    inputs = {i["description"]: i for i in data["inputs"]}
    assert set(inputs) == set(SECRETS)
    assert all(i["password"] is True and i["type"] == "promptString" for i in inputs.values())
    env = data["servers"]["poolpilot"]["env"]
    assert env["DIGITALOCEAN_TOKEN"] == "${input:" + inputs["DIGITALOCEAN_TOKEN"]["id"] + "}"
    assert data["servers"]["poolpilot"]["type"] == "stdio"


def test_config_claude_code_is_one_shell_command_without_secret_values() -> None:
    text = config_text("claude-code", env=ENV)
    words = shlex.split(text)
    assert words[:3] == ["claude", "mcp", "add"]
    separator = words.index("--")
    assert words[separator - 1] == "poolpilot"
    assert Path(words[separator + 1]).is_absolute()
    assert "serve" in words[separator + 1 :]
    assert "DIGITALOCEAN_TOKEN=$DIGITALOCEAN_TOKEN" in words  # the user's shell expands it, we never print it
    assert "HUAWEICLOUD_SDK_REGION=cn-north-4" in words
    for value in SECRETS.values():
        assert value not in text


def test_config_read_only_and_runner_forms() -> None:
    entry = _server_entry("cursor", config_text("cursor", env={}, read_only=True))
    assert entry["args"][-1] == "--read-only"  # type: ignore[index]
    assert "env" not in entry or "DIGITALOCEAN_TOKEN" not in entry["env"]  # type: ignore[operator]
    uvx = _server_entry("claude-desktop", config_text("claude-desktop", env={}, runner="uvx"))
    assert uvx["command"] == "uvx" and uvx["args"] == ["poolpilot", "serve"]
    pipx = shlex.split(config_text("claude-code", env={}, runner="pipx", read_only=True))
    assert pipx[pipx.index("--") + 1 :] == ["pipx", "run", "poolpilot", "serve", "--read-only"]


def test_config_launch_command_is_absolute() -> None:
    launch = launch_command()
    assert Path(launch.command).is_absolute()
    assert "serve" in launch.args


@pytest.mark.parametrize("client", CLIENTS)
def test_config_cli_prints_no_secret_from_the_environment(client: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(ENV, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "poolpilot.server", "config", client],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if client == "claude-code":
        assert shlex.split(done.stdout)[:3] == ["claude", "mcp", "add"]
    else:
        json.loads(done.stdout)
    for value in SECRETS.values():
        assert value not in done.stdout + done.stderr
