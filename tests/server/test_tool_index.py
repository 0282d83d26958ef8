"""Each provider's tool index (name -> safety class) against its tool modules, and start-up importing only the
tool modules of the toolsets that are on (issue 23: cold start)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.provider import Provider
from poolpilot.server.shell.registry import faces
from tests.example_provider import FACE as EXAMPLE
from tests.support import sandbox_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("face", [*faces(), EXAMPLE], ids=lambda f: f.name)
def test_the_index_names_every_tool_once_with_its_safety_class_in_toolset_order(face: Provider) -> None:
    loaded = [spec for toolset in face.toolset_names() for spec in face.load(toolset)]
    assert len({s.name for s in loaded}) == len(loaded), "a tool loaded by two toolsets"
    assert [(s.name, s.safety.value) for s in loaded] == list(face.index.items())
    for spec in loaded:
        assert spec.safety is Safety(face.index[spec.name])
    # Every extra toolset names indexed tools only, and loading a toolset gives exactly its tools.
    for toolset in face.toolsets:
        assert set(toolset.tools) <= set(face.index)
        assert [s.name for s in face.specs(toolset.name)] == [n for n in face.index if n in toolset.tools]


def test_a_tool_whose_class_differs_from_the_index_is_refused_when_loaded() -> None:
    """--read-only decides from the index: a destructive tool indexed as a read must not load silently."""
    lying = dataclasses.replace(EXAMPLE, index={**EXAMPLE.index, "example_delete_pool": "read"})
    with pytest.raises(RuntimeError, match="'example_delete_pool' is 'destructive' but its index says 'read'"):
        lying.specs("example")
    missing = dataclasses.replace(EXAMPLE, index={**EXAMPLE.index, "example_resize_pool": "write"})
    with pytest.raises(RuntimeError, match="did not load 'example_resize_pool'"):
        missing.tools()


def test_read_only_is_decided_from_the_index_without_loading_the_other_toolsets(tmp_path: Path) -> None:
    from poolpilot.server.shell.app import plan_tools

    plan = plan_tools(dataclasses.replace(sandbox_settings(tmp_path / "a.jsonl"), read_only=True))
    assert all(spec.safety is Safety.READ for spec in plan.specs)
    assert plan.hidden["digitalocean_delete_pool"] == "read_only"
    assert plan.hidden["digitalocean_resize_cluster"] == "read_only"
    deferred = {d.toolset: list(d.safety) for d in plan.dynamic}
    assert deferred["digitalocean_cluster"] == ["digitalocean_get_cluster_config", "digitalocean_list_cluster_options"]


_PROBE = """
import anyio, json, sys
from poolpilot.server.shell.app import build_app, load_settings
app = build_app(load_settings())
if sys.argv[1] == "list":
    anyio.run(app.list_tools)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("poolpilot.tools."))))
"""


def _modules_at_start(tmp_path: Path, then: str = "nothing", **env: str) -> set[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("POOLPILOT_", "DIGITALOCEAN_", "HUAWEI"))}
    environ |= {"POOLPILOT_BACKEND": "sandbox", "POOLPILOT_AUDIT_LOG": str(tmp_path / "audit.jsonl"), **env}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, then],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(out.stdout))


def test_start_up_imports_no_tool_module_client_model_or_sandbox(tmp_path: Path) -> None:
    """The faces, their settings and resource registration only: everything else loads at the first call."""
    allowed = {"settings", "resources"}
    at_start = _modules_at_start(tmp_path, POOLPILOT_TOOL_CACHE="off")
    assert at_start, "the probe saw no provider module"
    for module in at_start:
        parts = module.split(".")
        assert len(parts) == 3 or parts[3] in allowed, module


def test_building_the_tool_list_imports_the_tool_modules_of_the_toolsets_on_only(tmp_path: Path) -> None:
    default = _modules_at_start(tmp_path, "list", POOLPILOT_TOOL_CACHE="off")
    assert "poolpilot.tools.digitalocean.tools" in default
    assert "poolpilot.tools.taurusdb.tools" in default
    off = [
        "poolpilot.tools.digitalocean.user_tools",  # digitalocean_users: a run-time toolset no session enabled
        "poolpilot.tools.digitalocean.cluster_tools",  # digitalocean_cluster
        "poolpilot.tools.taurusdb.admin_tools",  # taurusdb_proxy_admin
        "poolpilot.tools.pools.codetools",  # pools_code
        "poolpilot.tools.pgbouncer.tools",  # no instance configured: the provider is off
        "poolpilot.tools.pgbouncer.config",
    ]
    assert not default & set(off)
    every = "digitalocean,digitalocean_users,digitalocean_cluster,taurusdb,taurusdb_proxy_admin,pools,pools_code"
    assert set(off[:4]) <= _modules_at_start(tmp_path, "list", POOLPILOT_TOOL_CACHE="off", POOLPILOT_TOOLSETS=every)
    only = _modules_at_start(tmp_path, "list", POOLPILOT_TOOL_CACHE="off", POOLPILOT_TOOLS="digitalocean_list_pools")
    assert "poolpilot.tools.digitalocean.tools" in only
    assert not {"poolpilot.tools.taurusdb.tools", "poolpilot.tools.digitalocean.user_tools"} & only
