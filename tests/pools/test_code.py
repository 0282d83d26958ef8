"""Pools as code on the sandbox, through a real MCP client: export → plan round trip, a multi-provider plan applied
in budget-safe order under one confirmation, every reason at once, a target changed between plan and apply, and
the shipped JSON Schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp_types import TextContent

from poolpilot.server.shell.registry import faces
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.pools.docschema import SCHEMA_PATH, document_schema, shipped
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.support import MODES, ManualClock, Sandbox, client_options, error_model, make_app, ok_data, open_client

pytestmark = pytest.mark.anyio

TOOLSETS = ("digitalocean", "taurusdb", "pools", "pools_code")


@asynccontextmanager
async def _client(
    audit: Path,
    *,
    mode: str = "auto",
    sandbox: Sandbox | None = None,
    clock: ManualClock | None = None,
    asked: list[str] | None = None,
    **overrides: Any,
) -> AsyncIterator[Client]:
    """A client on the sandbox; with `asked`, one that answers every question "yes" (and records it there)."""
    clock = clock or ManualClock()
    sandbox = sandbox or Sandbox(clock=clock, sleep=clock.sleep, job_seconds=(1.0, 2.0))
    app, _, _ = make_app(audit, sandbox=sandbox, clock=clock, toolsets=TOOLSETS, **overrides)
    with anyio.fail_after(20):
        options = client_options(mode, "yes" if asked is not None else None, asked if asked is not None else [])
        async with open_client(app, **options) as client:
            yield client


async def _ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    return ok_data(await client.call_tool(tool, args))


def _pool(doc: dict[str, Any], location: str, pool: str) -> dict[str, Any]:
    return next(p for p in doc["pools"] if (p["location"], p["pool"]) == (location, pool))


def _edited(doc: dict[str, Any]) -> dict[str, Any]:
    """Shrink one DO pool, create two (one needs the shrink's room first), switch a TaurusDB proxy."""
    doc = json.loads(json.dumps(doc))
    _pool(doc, PG_MAIN_ID, "app-tx")["spec"]["size"] = 5
    _pool(doc, INSTANCE_PROD, PROXY_SWITCHABLE)["spec"]["pool_type"] = "SESSION"
    new = {"mode": "transaction", "size": 60, "db": "app", "user": "app"}
    doc["pools"].append({"provider": "digitalocean", "location": PG_MAIN_ID, "pool": "batch", "spec": new})
    small = {"mode": "transaction", "size": 12, "db": "defaultdb"}
    doc["pools"].append({"provider": "digitalocean", "location": "pg-small", "pool": "web2", "spec": small})
    return doc


async def _apply(client: Client, doc: dict[str, Any], plan_id: str) -> dict[str, Any]:
    preview = await _ok(client, "pools_apply", document=doc, plan_id=plan_id)
    assert preview["outcome"] == "confirmation_required" and preview["executed"] is False
    token = preview["confirm_token"]
    return await _ok(client, "pools_apply", document=doc, plan_id=plan_id, confirm_token=token)


@pytest.mark.parametrize("mode", MODES)
async def test_pools_export_then_plan_shows_no_changes(audit_path: Path, mode: str) -> None:
    async with _client(audit_path, mode=mode) as client:
        doc = await _ok(client, "pools_export")
        plan = await _ok(client, "pools_plan", document=doc)
        again = await _ok(client, "pools_plan", document=doc)
        nothing = await _ok(client, "pools_apply", document=doc, plan_id=plan["plan_id"])
    assert {p["provider"] for p in doc["pools"]} == {"digitalocean", "taurusdb"}
    assert (plan["changes"], plan["steps"]) == (False, [])
    assert plan["plan_id"] == again["plan_id"]
    assert all(d["create"] + d["update"] + d["delete"] + d["switch"] == 0 for d in plan["drift"])
    assert nothing["outcome"] == "no_change" and nothing["executed"] is False


async def test_pools_export_validates_against_the_shipped_schema(audit_path: Path) -> None:
    async with _client(audit_path) as client:
        doc = await _ok(client, "pools_export", provider="digitalocean", location="pg-small")
    jsonschema.validate(doc, shipped())
    assert [p["pool"] for p in doc["pools"]] == ["web"] and doc["scopes"][0]["location"] == "pg-small"
    bad = {"pools": [{"provider": "digitalocean", "location": "x", "pool": "y", "spec": {"size": "big"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, shipped())


def test_desired_state_schema_file_matches_the_models() -> None:
    adapters = [(f.name, f.fleet()) for f in faces() if f.fleet is not None]
    specs = {name: a.code.spec for name, a in adapters if a.code is not None}
    assert set(specs) == {"digitalocean", "taurusdb", "pgbouncer"}
    generated = json.dumps(document_schema(specs), indent=2, ensure_ascii=False) + "\n"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == generated, "regenerate: see tools/pools/docschema.py"


@pytest.mark.parametrize("mode", MODES)
async def test_pools_apply_runs_a_multi_provider_plan_in_budget_safe_order(audit_path: Path, mode: str) -> None:
    async with _client(audit_path, mode=mode) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        order = [(s["action"], s["pool"]) for s in plan["steps"]]
        assert order == [
            ("update", "app-tx"),
            ("switch", PROXY_SWITCHABLE),
            ("create", "web2"),  # pg-small's id sorts before pg-main's
            ("create", "batch"),
        ]
        main = next(b for b in plan["budgets"] if b["location"] == PG_MAIN_ID)
        small = next(b for b in plan["budgets"] if b["location"] == PG_SMALL_ID)
        assert (main["max"], main["before"], main["after"], main["peak"]) == (97, 50, 95, 95)
        assert (small["before"], small["after"]) == (10, 22)
        applied = await _apply(client, doc, plan["plan_id"])
        after = await _ok(client, "pools_plan", document=doc)
        overview = await _ok(client, "pools_overview")
    assert applied["outcome"] == "executed" and applied["confirmed_by"] == "token"
    assert [r["status"] for r in applied["results"]] == ["done"] * 4
    assert (applied["done"], applied["failed"], applied["not_started"]) == (4, 0, 0)
    assert after["changes"] is False
    rows = {r["pool"]: r for r in overview["rows"]}
    assert rows["batch"]["size"] == 60 and rows["app-tx"]["size"] == 5 and rows[PROXY_SWITCHABLE]["mode"] == "SESSION"
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]  # noqa: ASYNC240
    steps = [line for line in lines if line.get("step") is not None]
    assert [line["step"] for line in steps] == [1, 2, 3, 4]
    assert {line["plan_id"] for line in steps} == {plan["plan_id"]}


async def test_pools_plan_refuses_with_every_reason_at_once(audit_path: Path) -> None:
    doc = {
        "pools": [
            {
                "provider": "digitalocean",
                "location": PG_MAIN_ID,
                "pool": "huge",
                "spec": {"mode": "session", "size": 90, "db": "app"},
            },
            {
                "provider": "digitalocean",
                "location": PG_MAIN_ID,
                "pool": "ghost",
                "spec": {"mode": "session", "size": 1, "db": "nope"},
            },
            {"provider": "taurusdb", "location": INSTANCE_PROD, "pool": "missing", "spec": {"pool_type": "SESSION"}},
            {"provider": "digitalocean", "location": PG_SMALL_ID, "pool": "half", "spec": {"size": 3}},
            {"provider": "digitalocean", "location": PG_SMALL_ID, "pool": "typed", "spec": {"size": "3"}},
        ]
    }
    async with _client(audit_path) as client:
        error = error_model(await client.call_tool("pools_plan", {"document": doc}))
    assert error["code"] == "validation_error" and error["field"] == "document"
    message = error["message"]
    assert "5 reason(s)" in message
    for part in ("over budget", '"nope" does not exist', "proxies are not created here", "needs mode, db", "size"):
        assert part in message


async def test_pools_apply_refuses_when_a_target_changed_after_the_plan(audit_path: Path) -> None:
    async with _client(audit_path) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        preview = await _ok(client, "pools_apply", document=doc, plan_id=plan["plan_id"])
        await _ok(
            client,
            "digitalocean_create_pool",
            cluster_id=PG_MAIN_ID,
            pool_name="sneaky",
            mode="session",
            size=1,
            db="defaultdb",
        )
        changed = error_model(
            await client.call_tool(
                "pools_apply",
                {"document": doc, "plan_id": plan["plan_id"], "confirm_token": preview["confirm_token"]},
            )
        )
        overview = await _ok(client, "pools_overview", provider="digitalocean")
    assert changed["code"] == "conflict" and changed["field"] == "plan_id", changed
    assert "nothing was changed" in changed["message"]
    assert not any(r["pool"] in ("batch", "web2") for r in overview["rows"])


async def test_reconcile_pools_prompt_walks_through_export_plan_and_apply(audit_path: Path) -> None:
    async with _client(audit_path) as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
        got = await client.get_prompt("reconcile_pools", {"provider": "taurusdb\u2028x"})
    assert "reconcile_pools" in listed
    content = got.messages[0].content
    assert isinstance(content, TextContent)
    text = content.text
    order = [text.index(tool) for tool in ("pools_export", "pools_plan", "pools_apply")]
    assert order == sorted(order) and "plan_id" in text and "confirm_token" in text
    assert "\u2028" not in text and '"taurusdb\\u2028x"' in text


@pytest.mark.parametrize("name", ["web\u2028x", "..", "a\u202eb", "x\x00"])
async def test_pools_plan_refuses_hidden_characters_and_dot_segments_without_echoing_them(
    audit_path: Path, name: str
) -> None:
    doc = {"pools": [{"provider": "digitalocean", "location": PG_SMALL_ID, "pool": name, "spec": {"size": 3}}]}
    async with _client(audit_path) as client:
        error = error_model(await client.call_tool("pools_plan", {"document": doc}))
    assert error["code"] == "validation_error" and error["field"].startswith("document.pools")
    assert name == ".." or name not in json.dumps(error, ensure_ascii=False)  # the rule itself names ".."


@pytest.mark.parametrize("mode", MODES)
async def test_pools_apply_asks_once_for_the_whole_plan_when_the_client_can_be_asked(
    audit_path: Path, mode: str
) -> None:
    asked: list[str] = []
    async with _client(audit_path, mode=mode, asked=asked) as client:
        doc = _edited(await _ok(client, "pools_export"))
        plan = await _ok(client, "pools_plan", document=doc)
        applied = await _ok(client, "pools_apply", document=doc, plan_id=plan["plan_id"])
    assert applied["confirmed_by"] == "elicitation" and applied["done"] == 4
    assert len(set(asked)) == 1 and "apply pools plan" in asked[0] and plan["plan_id"][:12] in asked[0]


async def test_pools_code_is_off_by_default_and_joins_the_list_when_enabled(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path, toolsets=None)  # the server's default
    async with open_client(app, mode="legacy") as client:
        before = {t.name for t in (await client.list_tools()).tools}
        await _ok(client, "toolsets_enable", toolset="pools_code")
        after = {t.name for t in (await client.list_tools()).tools}
    code = {"pools_export", "pools_plan", "pools_apply"}
    assert not code & before and len(before) <= 16
    assert code <= after
