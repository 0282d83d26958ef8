"""pools_advise through a real MCP client: each rule fires on seeded or mutated sandbox data, stays silent on
healthy data, echoes its thresholds, and the suggested call of a budget finding clears it once confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.app import load_settings
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID, Pool
from poolpilot.tools.taurusdb.sandbox_seed import (
    INSTANCE_ANALYTICS,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SWITCHABLE,
)
from tests.support import Sandbox, make_app, open_client

pytestmark = pytest.mark.anyio

MODES = ("legacy", "auto")


async def _advise(client: Client, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(5):
        result = await client.call_tool("pools_advise", args)
    data: dict[str, Any] | None = result.structured_content
    assert not result.is_error and data is not None, result.content
    return data


def _rules(data: dict[str, Any], provider: str | None = None) -> list[tuple[str, str | None]]:
    return [(f["rule"], f.get("pool")) for f in data["findings"] if provider in (None, f["provider"])]


def _all_session(sandbox: Sandbox) -> None:
    for proxy in sandbox.taurusdb.proxies.values():
        proxy.connection_pool_type = "SESSION"


async def test_pools_advise_is_silent_on_healthy_data_and_echoes_its_thresholds(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    _all_session(sandbox)
    async with open_client(app) as client:
        data = await _advise(client)
    assert (data["findings"], data["errors"]) == ([], [])
    assert data["thresholds"] == {
        "budget_warn": 0.9,
        "session_share": 0.25,
        "waiting_clients": 0.0,
        "max_wait_s": 1.0,
        "growth": 2.0,
    }


async def test_pools_advise_thresholds_come_from_the_settings(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path, advise_budget_warn=0.5, advise_session_share=0.1)
    _all_session(sandbox)
    async with open_client(app) as client:
        data = await _advise(client)
    assert (data["thresholds"]["budget_warn"], data["thresholds"]["session_share"]) == (0.5, 0.1)
    # pg-main allocates 50 of 97 (52 %), and its 10-connection session pool holds 10 % of the budget.
    assert sorted(_rules(data)) == [("do_budget_high", "app-tx"), ("do_session_pool_large", "app-session")]


@pytest.mark.parametrize("mode", MODES)
async def test_pools_advise_budget_finding_is_cleared_by_its_confirmed_suggested_call(
    audit_path: Path, mode: str
) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.digitalocean.clusters[PG_SMALL_ID].pools["api"] = Pool("api", "transaction", 10, "defaultdb", "doadmin")
    sandbox.faults.add("403@databases_list_options")  # without the size options, the advice shrinks a pool
    async with open_client(app, mode=mode) as client:
        (finding,) = (await _advise(client, provider="digitalocean"))["findings"]
        assert (finding["rule"], finding["severity"], finding["location"]) == ("do_budget_high", "warning", PG_SMALL_ID)
        assert finding["evidence"] == {"max": 22, "allocated": 20, "share": 0.909}
        assert "size options could not be read" in finding["explanation"]
        call = finding["suggested_call"]
        assert call["tool"] == "digitalocean_update_pool" and call["arguments"]["size"] < 10
        requests = sandbox.requests
        with anyio.fail_after(5):
            preview = await client.call_tool(call["tool"], call["arguments"])  # no elicitation: the token path
        assert preview.structured_content is not None and preview.structured_content["confirmation_required"]
        assert sandbox.digitalocean.clusters[PG_SMALL_ID].pools["api"].size == 10  # advice and preview never act
        assert sandbox.requests > requests
        token = preview.structured_content["confirm_token"]
        with anyio.fail_after(5):
            done = await client.call_tool(call["tool"], {**call["arguments"], "confirm_token": token})
        assert done.structured_content is not None and done.structured_content["executed"] is True
        after = await _advise(client, provider="digitalocean")
    assert after["findings"] == []


async def test_pools_advise_overcommitted_budget_is_critical_and_one_resize_clears_it(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.digitalocean.clusters[PG_SMALL_ID].pools["web"].size = 30  # set behind the API's back
    async with open_client(app) as client:
        (finding,) = (await _advise(client, provider="digitalocean"))["findings"]
        assert (finding["rule"], finding["severity"]) == ("do_budget_overcommitted", "critical")
        assert finding["evidence"]["allocated"] == 30
        # The next size that fits: db-s-1vcpu-2gb (budget 47) holds 30 below 90 %; shrinking is the alternative.
        call = finding["suggested_call"]
        assert call == {
            "tool": "digitalocean_resize_cluster",
            "arguments": {"cluster_id": PG_SMALL_ID, "size": "db-s-1vcpu-2gb"},
        }
        assert "budget 47" in finding["explanation"] and 'Shrink "web"' in finding["explanation"].replace(
            "shrink", "Shrink"
        )
        preview = await client.call_tool(call["tool"], call["arguments"])
        assert preview.structured_content is not None
        token = preview.structured_content["confirm_token"]
        with anyio.fail_after(5):
            done = await client.call_tool(call["tool"], {**call["arguments"], "confirm_token": token})
        assert done.structured_content is not None and done.structured_content["wait_outcome"] == "online"
        after = await _advise(client, provider="digitalocean")
    assert after["findings"] == []
    assert sandbox.digitalocean.clusters[PG_SMALL_ID].budget == 47


async def test_pools_advise_large_session_pool_suggests_transaction_mode(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.digitalocean.clusters[PG_MAIN_ID].pools["app-session"].size = 30  # 30 of 97: 31 %
    async with open_client(app) as client:
        data = await _advise(client, provider="digitalocean")
    (finding,) = data["findings"]
    assert (finding["rule"], finding["pool"]) == ("do_session_pool_large", "app-session")
    assert finding["suggested_call"]["arguments"] == {
        "cluster_id": PG_MAIN_ID,
        "pool_name": "app-session",
        "mode": "transaction",
    }
    assert "prepared statements" in finding["explanation"]


async def test_pools_advise_orphaned_pools_name_the_missing_database_or_user(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    main = sandbox.digitalocean.clusters[PG_MAIN_ID]
    main.dbs.remove("reporting")
    del main.users["migrator"]
    async with open_client(app) as client:
        data = await _advise(client, provider="digitalocean")
    calls = {f["pool"]: f["suggested_call"] for f in data["findings"] if f["rule"] == "do_pool_orphaned"}
    assert calls["reporting"] == {
        "tool": "digitalocean_delete_pool",
        "arguments": {"cluster_id": PG_MAIN_ID, "pool_name": "reporting"},
    }
    assert calls["app-session"]["arguments"] == {
        "cluster_id": PG_MAIN_ID,
        "pool_name": "app-session",
        "inbound_user": True,
    }
    assert len(data["findings"]) == 2


async def test_pools_advise_closed_switchable_proxies_get_session_and_kernel_blocked_ones_a_version_check(
    audit_path: Path,
) -> None:
    app, _, _ = make_app(audit_path)
    async with open_client(app) as client:
        data = await _advise(client, provider="taurusdb")
    # The old-kernel proxy claims it can switch, but its version (< 2.22.07.000) would get DBS.05000001.
    assert sorted(_rules(data)) == sorted(
        [
            ("taurusdb_pool_closed", PROXY_SWITCHABLE),
            ("taurusdb_session_blocked", PROXY_OLD_KERNEL),
            ("taurusdb_session_blocked", PROXY_FLAG_FALSE),
        ]
    )
    by_rule = {(f["rule"], f["pool"]): f for f in data["findings"]}
    call = by_rule[("taurusdb_pool_closed", PROXY_SWITCHABLE)]["suggested_call"]
    assert call["tool"] == "taurusdb_set_proxy_pool_type" and call["arguments"]["pool_type"] == "SESSION"
    blocked = by_rule[("taurusdb_session_blocked", PROXY_OLD_KERNEL)]
    assert blocked["suggested_call"] == {
        "tool": "taurusdb_get_proxy_version",
        "arguments": {"instance_id": INSTANCE_ANALYTICS, "proxy_id": PROXY_OLD_KERNEL},
    }
    assert "taurusdb_upgrade_proxy_version" in blocked["explanation"] and "DBS.05000001" in blocked["explanation"]


async def test_pools_advise_reports_a_failed_provider_beside_the_findings(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    sandbox.faults.add("503@digitalocean")
    async with open_client(app) as client:
        data = await _advise(client)
    assert [e["provider"] for e in data["errors"]] == ["digitalocean"]
    assert {f["provider"] for f in data["findings"]} == {"taurusdb"}


def test_pools_advise_thresholds_load_from_poolpilot_variables() -> None:
    env = {"POOLPILOT_ADVISE_BUDGET_WARN": "0.8", "POOLPILOT_ADVISE_SESSION_SHARE": "0.4"}
    settings = load_settings({}, {**env, "POOLPILOT_OVERVIEW_TIMEOUT_S": "3"})
    assert (settings.advise_budget_warn, settings.advise_session_share, settings.overview_timeout_s) == (0.8, 0.4, 3)
    for var, bad in (("POOLPILOT_ADVISE_BUDGET_WARN", "1.5"), ("POOLPILOT_OVERVIEW_TIMEOUT_S", "0")):
        with pytest.raises(ConfigError) as caught:
            load_settings({}, {var: bad})
        assert caught.value.setting == var
