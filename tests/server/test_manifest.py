"""manifest.json (MCPB bundle, manifest_version 0.4, checked with `npx @anthropic-ai/mcpb validate`) stays in step
with the server: every registered tool of every toolset, pyproject's version, and secrets marked sensitive."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.toolsets import TOOL_NAMES as TOOLSET_TOOLS
from poolpilot.server.shell.app import build_app
from poolpilot.server.shell.registry import faces
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SECRET_VARS = ("DIGITALOCEAN_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "POOLPILOT_PGBOUNCER_MAIN_DSN")


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    return data


async def test_manifest_tools_equal_the_registered_tools(tmp_path: Path) -> None:
    # Every toolset enabled: PgBouncer needs an instance to register (nothing connects until a call).
    pgbouncer = (PgBouncerInstance("main", "postgresql://admin@127.0.0.1:6432/pgbouncer"),)
    settings = Settings(
        backend="sandbox",
        audit_log=str(tmp_path / "audit.jsonl"),
        toolsets=tuple(n for face in faces() for n in face.toolset_names()),
        providers={"pgbouncer": PgBouncerSettings(instances=pgbouncer)},
    )
    registered = [{"name": t.name, "description": t.description} for t in await build_app(settings).list_tools()]
    every_spec = {spec.name for face in faces() for spec in face.tools()} | TOOLSET_TOOLS
    assert {t["name"] for t in registered} == every_spec
    assert _manifest()["tools"] == registered, "regenerate manifest.json's tools:\n" + json.dumps(registered, indent=2)


def test_manifest_version_is_pyprojects() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    manifest = _manifest()
    assert manifest["version"] == version
    assert manifest["manifest_version"] == "0.4"


def test_manifest_secrets_are_sensitive_and_every_reference_exists() -> None:
    manifest = _manifest()
    user_config = manifest["user_config"]
    env = manifest["server"]["mcp_config"]["env"]
    referenced = {var: re.fullmatch(r"\$\{user_config\.(\w+)\}", value) for var, value in env.items()}
    for var in SECRET_VARS:
        match = referenced[var]
        assert match is not None, var
        assert user_config[match.group(1)].get("sensitive") is True, var
    for var, match in referenced.items():
        if match is not None:
            assert match.group(1) in user_config, var
    for key, entry in user_config.items():
        if entry.get("sensitive"):
            assert entry.get("default", "") == "", key  # never a secret in the manifest itself


def test_manifest_server_entry_runs_poolpilot_serve() -> None:
    server = _manifest()["server"]
    assert server["type"] == "python"
    assert (ROOT / server["entry_point"]).is_file()
    assert server["mcp_config"]["args"] == ["-m", "poolpilot.server", "serve"]
