"""One folder plus one line (issue 16): the example provider, registered with one call and no other edit, is in
tools/list with annotations and output schemas, behind the guard, in `poolpilot tools`, doctor, client
configuration, pools_overview and the resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolpilot.server.shell import registry
from tests.support import make_app, open_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.example_provider"
# The one line, as a command line would run it: register, then the real CLI.
REGISTERED_CLI = (
    "from poolpilot.server.shell import registry; registry.register('tests.example_provider'); "
    "from poolpilot.server.shell.cli import main; raise SystemExit(main())"
)


@pytest.fixture
def registered() -> Iterator[None]:
    registry.register(MODULE)
    try:
        yield
    finally:
        registry.unregister(MODULE)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    return subprocess.run(
        [sys.executable, "-c", REGISTERED_CLI, *args],
        cwd=ROOT,
        env={**base, "POOLPILOT_AUDIT_LOG": "-", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_example_tools_are_listed_with_annotations_and_output_schemas(registered: None, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl")
    async with open_client(app) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"example_list_pools", "example_create_pool", "example_delete_pool"} <= set(tools)
    read, write, delete = (tools[f"example_{v}_pool{'s' if v == 'list' else ''}"] for v in ("list", "create", "delete"))
    assert read.annotations is not None and read.annotations.read_only_hint is True
    assert write.annotations is not None and write.annotations.destructive_hint is False
    assert delete.annotations is not None and delete.annotations.destructive_hint is True
    assert all(t.output_schema for t in (read, write, delete))
    assert "confirm_token" in delete.input_schema["properties"]


async def test_example_destructive_tool_goes_through_the_guard(registered: None, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl")
    async with open_client(app) as client:
        preview = await client.call_tool("example_delete_pool", {"pool_name": "alpha"})
        data = preview.structured_content or {}
        assert data["outcome"] == "confirmation_required" and data["executed"] is False
        done = await client.call_tool(
            "example_delete_pool", {"pool_name": "alpha", "confirm_token": data["confirm_token"]}
        )
        assert (done.structured_content or {})["executed"] is True
        again = await client.call_tool(
            "example_delete_pool", {"pool_name": "beta", "confirm_token": data["confirm_token"]}
        )
        assert again.is_error and (again.structured_content or {})["code"] == "confirmation_invalid"
        rows = (await client.call_tool("example_list_pools", {})).structured_content or {}
    assert [r["name"] for r in rows["rows"]] == ["beta"]
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(r["tool"] == "example_delete_pool" and r["outcome"] == "executed" for r in audit)


async def test_example_pools_are_in_the_overview_and_the_resources(registered: None, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl")
    async with open_client(app) as client:
        overview = (await client.call_tool("pools_overview", {"provider": "example"})).structured_content or {}
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        page = await client.read_resource("example://pools/all")
    assert [(r["provider"], r["pool"]) for r in overview["rows"]] == [("example", "alpha"), ("example", "beta")]
    assert "example://pools/{scope}" in templates
    assert "alpha" in str(page.contents[0])


def test_example_is_in_poolpilot_tools_doctor_and_config() -> None:
    tools = _cli("tools")
    assert tools.returncode == 0, tools.stderr
    assert "example_delete_pool" in tools.stdout and "destructive" in tools.stdout
    doctor = _cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["example"]["status"] == "ok" and "in-memory" in checks["example"]["detail"]
    live = _cli("doctor", "--json", env={"EXAMPLE_TOKEN": "t0ken-value"})
    names = [c["name"] for c in json.loads(live.stdout)["checks"]]
    assert "example api" in names and "t0ken-value" not in live.stdout
    config = _cli("config", "claude-desktop", env={"EXAMPLE_TOKEN": "t0ken-value"})
    assert config.returncode == 0, config.stderr
    assert "<your EXAMPLE_TOKEN>" in config.stdout and "t0ken-value" not in config.stdout + config.stderr


def test_unregistered_example_is_nowhere() -> None:
    assert MODULE not in [f.__module__ for f in registry.faces()]
    assert "example" not in [f.name for f in registry.faces()]
