"""pools_overview through a real MCP client over the sandbox: rows from every provider, filters, and failures
that stay local to the provider or location that failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD, PROXY_FLAG_FALSE, PROXY_SWITCHABLE
from tests.support import ManualClock, Sandbox, error_model, make_app, open_client

pytestmark = pytest.mark.anyio

MODES = ("legacy", "auto")


async def _ok(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(5):
        result = await client.call_tool(tool, args)
    data: dict[str, Any] | None = result.structured_content
    assert not result.is_error and data is not None, result.content
    return data


def _row(data: dict[str, Any], pool: str) -> dict[str, Any]:
    return next(r for r in data["rows"] if r["pool"] == pool)


@pytest.mark.parametrize("mode", MODES)
async def test_pools_overview_lists_rows_from_every_sandbox_provider(audit_path: Path, mode: str) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        data = await _ok(client, "pools_overview")
    for name in ("pools_overview", "pools_advise"):
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is True and hints.destructive_hint is None
    assert (data["backend"], data["errors"]) == ("sandbox", [])
    assert {r["provider"] for r in data["rows"]} == {"digitalocean", "taurusdb"}
    web = _row(data, "web")
    assert web["location"] == PG_SMALL_ID and web["location_name"] == "pg-small"
    assert web["budget"] == {"max": 22, "allocated": 10, "available": 12}
    assert (web["mode"], web["size"], web["db_exists"], web["user_exists"]) == ("transaction", 10, True, True)
    assert "user" not in _row(data, "analytics_inbound")  # inbound-user pool: no user, so nothing to lose
    rw, old = _row(data, PROXY_SWITCHABLE), _row(data, PROXY_FLAG_FALSE)
    assert (rw["location"], rw["pool_label"], rw["mode"], rw["switchable"]) == (
        INSTANCE_PROD,
        "proxy-prod-rw",
        "CLOSED",
        True,
    )
    assert old["switchable"] is False
    assert all(r["backend"] == "sandbox" for r in data["rows"])


async def test_pools_overview_filters_by_provider_and_location_name_or_id(audit_path: Path) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        prod = await _ok(client, "pools_overview", provider="taurusdb", location="taurus-prod")
        main = await _ok(client, "pools_overview", location=PG_MAIN_ID)
    assert {r["pool_label"] for r in prod["rows"]} == {"proxy-prod-rw", "proxy-prod-ro"}
    assert {r["pool"] for r in main["rows"]} == {"app-tx", "app-session", "reporting", "analytics_inbound"}


async def test_pools_overview_provider_not_enabled_is_a_validation_error(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    async with open_client(app) as client:
        result = await client.call_tool("pools_overview", {"provider": "pgbouncer"})
    assert result.is_error and result.structured_content is not None
    error = result.structured_content
    assert (error["code"], error["field"], error["allowed"]) == (
        "validation_error",
        "provider",
        ["digitalocean", "taurusdb"],
    )
    assert sandbox.requests == 0


@pytest.mark.parametrize("mode", MODES)
async def test_pools_overview_faulted_provider_yields_an_error_entry_beside_the_other_rows(
    audit_path: Path, mode: str
) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.faults.add("503@taurusdb")
    async with open_client(app, mode=mode) as client:
        data = await _ok(client, "pools_overview")
    assert {r["provider"] for r in data["rows"]} == {"digitalocean"} and len(data["rows"]) == 5
    (failure,) = data["errors"]
    assert failure["provider"] == "taurusdb" and "location" not in failure
    assert (failure["error"]["code"], failure["error"]["http_status"]) == ("upstream_error", 503)


async def test_pools_overview_timed_out_provider_is_reported_while_the_others_answer(audit_path: Path) -> None:
    clock = ManualClock()
    # The timeout fault holds the request on real time; the overview gives each provider 1.5 s, which the
    # DigitalOcean reads (in process) must fit in even on a loaded machine (0.2 s did not, once).
    sandbox = Sandbox(clock=clock, sleep=anyio.sleep, faults=FaultPlan(), timeout_s=60)
    sandbox.faults.add("timeout@taurusdb")
    app, _, _ = make_app(audit_path, sandbox=sandbox, clock=clock, overview_timeout_s=1.5)
    async with open_client(app) as client:
        data = await _ok(client, "pools_overview")
    assert {r["provider"] for r in data["rows"]} == {"digitalocean"}
    (failure,) = data["errors"]
    assert (failure["provider"], failure["error"]["code"]) == ("taurusdb", "timeout")
    assert "1.5 s" in failure["error"]["message"]


async def test_pools_overview_failed_cluster_is_named_and_the_other_cluster_still_answers(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.faults.add("403@databases_list_connectionPools#1")  # 403 is not retried: exactly one cluster fails
    async with open_client(app) as client:
        data = await _ok(client, "pools_overview", provider="digitalocean")
    (failure,) = data["errors"]
    assert failure["location"] in (PG_SMALL_ID, PG_MAIN_ID) and failure["error"]["code"] == "forbidden"
    assert {r["location"] for r in data["rows"]} == {PG_SMALL_ID, PG_MAIN_ID} - {failure["location"]}


async def test_pools_overview_unreadable_users_leave_existence_unknown(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.faults.add("403@databases_list_users#1")
    async with open_client(app) as client:
        data = await _ok(client, "pools_overview", location="pg-small")
    web = _row(data, "web")
    assert web["db_exists"] is True and "user_exists" not in web
    assert [e["location"] for e in data["errors"]] == [PG_SMALL_ID]


@pytest.mark.parametrize("tool", ["pools_overview", "pools_advise"])
@pytest.mark.parametrize("location", ["pg\nmain", "pg\x00main", "pg-main\u202e", "x" * 101, ""])
async def test_location_with_control_characters_or_overlong_is_refused_naming_it(
    audit_path: Path, tool: str, location: str
) -> None:
    app, sandbox, _ = make_app(audit_path)
    async with open_client(app) as client:
        result = await client.call_tool(tool, {"location": location})
    err = error_model(result)
    assert (err["code"], err["field"]) == ("validation_error", "location"), err
    assert sandbox.requests == 0  # refused before anything was read
