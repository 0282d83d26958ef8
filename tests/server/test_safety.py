"""The safety layer across tools: classes and annotations, read-only, allowlists, audit, --confirm off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver.resolve import find_resolved_parameters
from mcp_types import ElicitResult

from poolpilot.server.kernel.audit import AuditLog
from poolpilot.server.kernel.config import ConfigError, Settings
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.redact import Redactor
from poolpilot.server.kernel.tooldef import asker
from poolpilot.server.kernel.toolsets import SPECS as TOOLSET_SPECS
from poolpilot.server.shell.app import build_app, select_tools
from poolpilot.server.shell.registry import faces
from tests.support import ManualClock, Sandbox, make_app, open_client, sandbox_settings

pytestmark = pytest.mark.anyio

PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
DELETE = {"cluster_id": PG_SMALL, "pool_name": "web"}


def _all_specs() -> list[Any]:
    return [spec for face in faces() for spec in face.tools()] + list(TOOLSET_SPECS)


def test_every_tool_declares_a_class_and_matching_annotations() -> None:
    for spec in _all_specs():
        hints = spec.safety.annotations()
        assert hints.read_only_hint is (spec.safety is Safety.READ), spec.name
        assert hints.destructive_hint is (spec.safety is Safety.DESTRUCTIVE), spec.name
        assert hints.open_world_hint is True


async def test_tools_list_carries_annotations_output_schemas_and_short_descriptions(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        tools = (await client.list_tools()).tools
    classes = {s.name: s.safety for s in _all_specs()}
    assert tools
    for tool in tools:
        assert tool.annotations is not None
        # Defaults (not read-only, open world, not idempotent) are left out; a read states no destructive hint, and
        # every other tool states one, so each tool says which it is (issue 23).
        assert tool.annotations.read_only_hint is (True if classes[tool.name] is Safety.READ else None), tool.name
        expected = None if classes[tool.name] is Safety.READ else classes[tool.name] is Safety.DESTRUCTIVE
        assert tool.annotations.destructive_hint is expected, tool.name
        assert tool.annotations.open_world_hint is None and tool.annotations.idempotent_hint is None, tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.description and len(tool.description) <= 120, tool.name
        assert "anyOf" not in tool.input_schema and "oneOf" not in tool.input_schema
        assert '"title":' not in json.dumps(tool.input_schema), tool.name


async def test_read_only_hides_every_non_read_tool_and_refuses_them(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path, read_only=True)
    async with open_client(app) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("digitalocean_delete_pool", DELETE)
    writers = {s.name for s in _all_specs() if s.safety is not Safety.READ}
    assert names and not names & writers
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["code"] == "read_only"
    assert sandbox.requests == 0


async def test_tool_allowlist_registers_only_those_tools(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path, tools=("digitalocean_list_clusters", "taurusdb_list_instances"))
    async with open_client(app) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("digitalocean_list_pools", {"cluster_id": PG_SMALL})
    assert names == {"digitalocean_list_clusters", "taurusdb_list_instances"}
    assert refused.structured_content is not None and refused.structured_content["code"] == "tool_not_allowed"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [({"tools": ("digitalocean_drop_everything",)}, "--tools"), ({"toolsets": ("nosuch",)}, "--toolsets")],
)
def test_unknown_tool_or_toolset_names_are_a_startup_error(overrides: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        select_tools(Settings(backend="sandbox", **overrides))
    assert caught.value.setting == setting


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_audit_log_records_preview_execution_decline_and_failure(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        preview = await client.call_tool("digitalocean_delete_pool", DELETE)
        assert preview.structured_content is not None
        token = preview.structured_content["confirm_token"]
        await client.call_tool("digitalocean_delete_pool", {**DELETE, "confirm_token": token})
        await client.call_tool("digitalocean_delete_pool", DELETE)  # already gone: failed
        await client.call_tool("digitalocean_list_clusters", {})  # reads are not audited

    async def no(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with open_client(app, elicitation_callback=no) as client:
        await client.call_tool("digitalocean_delete_pool", {"cluster_id": PG_SMALL, "pool_name": "nope-pool"})
        args = {"cluster_id": "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02", "pool_name": "reporting"}
        await client.call_tool("digitalocean_delete_pool", args)
    lines = _audit(audit_path)
    outcomes = [(line["tool"], line["outcome"]) for line in lines]
    assert outcomes == [
        ("digitalocean_delete_pool", "confirmation_required"),
        ("digitalocean_delete_pool", "started"),
        ("digitalocean_delete_pool", "executed"),
        ("digitalocean_delete_pool", "failed:not_found"),
        ("digitalocean_delete_pool", "failed:not_found"),
        ("digitalocean_delete_pool", "declined"),
    ]
    executed = lines[2]
    assert executed["confirmed_by"] == "token" and executed["backend"] == "sandbox"
    assert "web" in executed["target"] and executed["arguments"] == DELETE
    assert executed["client"] and "confirm_token" not in executed["arguments"]
    assert all("time" in line for line in lines)


async def test_audit_log_failure_refuses_the_mutation(tmp_path: Path) -> None:
    broken = AuditLog("/dev/full", Redactor())
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    app = build_app(sandbox_settings(tmp_path / "x"), sandbox=sandbox, clock=clock, sleep=clock.sleep, audit=broken)
    async with open_client(app) as client:
        preview = await client.call_tool("digitalocean_delete_pool", DELETE)
        assert preview.structured_content is not None
        token = preview.structured_content["confirm_token"]
        refused = await client.call_tool("digitalocean_delete_pool", {**DELETE, "confirm_token": token})
        created = await client.call_tool(
            "digitalocean_create_pool",
            {"cluster_id": PG_SMALL, "pool_name": "new-pool", "mode": "transaction", "size": 2, "db": "defaultdb"},
        )
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["code"] == "audit_failed"
    assert created.structured_content is not None and created.structured_content["code"] == "audit_failed"
    pools = sandbox.digitalocean.clusters[PG_SMALL].pools
    assert "web" in pools and "new-pool" not in pools


async def test_confirm_off_acts_at_once_and_the_banner_warns(audit_path: Path) -> None:
    from poolpilot.server.shell.commands import banner

    app, sandbox, _ = make_app(audit_path, confirm="off")
    async with open_client(app) as client:
        done = await client.call_tool("digitalocean_delete_pool", DELETE)
    assert done.structured_content is not None and done.structured_content["executed"] is True
    assert done.structured_content["confirmed_by"] == "off"
    assert "web" not in sandbox.digitalocean.clusters[PG_SMALL].pools
    assert "WARNING" in banner(Settings(backend="sandbox", confirm="off"))


async def test_confirm_token_mode_never_asks_even_a_capable_client(audit_path: Path) -> None:
    asked: list[str] = []

    async def yes(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    app, sandbox, _ = make_app(audit_path, confirm="token")
    async with open_client(app, elicitation_callback=yes) as client:
        preview = await client.call_tool("digitalocean_delete_pool", DELETE)
    assert asked == []
    assert preview.structured_content is not None and preview.structured_content["confirmation_required"] is True
    assert "web" in sandbox.digitalocean.clusters[PG_SMALL].pools


def test_every_destructive_tool_asks_through_a_resolver_on_its_own_plan() -> None:
    # The ask resolver (`asker(plan_fn)`) depends on the same plan resolver as the tool, so the question shows
    # the plan the body will act on; a resolver keyed to another plan would ask about something else.
    for spec in _all_specs():
        if spec.safety is not Safety.DESTRUCTIVE:
            continue
        resolved = find_resolved_parameters(spec.fn)
        assert set(resolved) == {"plan", "approval"}, spec.name
        ask = find_resolved_parameters(resolved["approval"][0].fn)
        assert set(ask) == {"plan"} and ask["plan"][0].fn is resolved["plan"][0].fn, spec.name


def test_asker_refuses_a_plan_resolver_without_a_plan_return_type() -> None:
    async def not_a_plan() -> int:
        return 1

    with pytest.raises(TypeError, match="Plan"):
        asker(not_a_plan)  # type: ignore[arg-type]
