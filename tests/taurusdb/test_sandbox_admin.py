"""The TaurusDB sandbox's proxy administration over httpx2's ASGI transport, signed like the SDK: version and
upgrade (which lifts DBS.05000001), parameters, session consistency; bodies checked against openapi.yaml."""

from __future__ import annotations

import json

import pytest

from poolpilot.tools.taurusdb.sandbox import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_OLD_KERNEL,
    PROXY_SWITCHABLE,
    TaurusDBSandbox,
)
from poolpilot.tools.taurusdb.sandbox_seed import LATEST_PROXY_VERSION
from tests.taurusdb.test_sandbox import JOBS, POOL_TYPE, SESSION, T0, P, _check, _client, _Clock, _error_code, _signed

pytestmark = pytest.mark.anyio

OLD = f"/v3/{P}/instances/{INSTANCE_ANALYTICS}/proxy/{PROXY_OLD_KERNEL}"
PROD = f"/v3/{P}/instances/{INSTANCE_PROD}/proxy/{PROXY_SWITCHABLE}"
BASE = "/v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}"
VERSION = BASE + "/{engine_name}/proxy-version"
UPGRADE = BASE + "/upgrade-version"
CONFIGS = BASE + "/configurations"
CONSISTENCE = BASE + "/session-consistence"


def _body(value: object) -> bytes:
    return json.dumps(value).encode()  # simplejson's default separators, as the SDK sends


async def test_proxy_version_of_an_old_kernel_offers_the_latest_with_its_risk() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        old = await _signed(client, "GET", f"{OLD}/taurusproxy/proxy-version")
        latest = await _signed(client, "GET", f"{PROD}/taurusproxy/proxy-version")
        other_engine = await _signed(client, "GET", f"{PROD}/mysqlproxy/proxy-version")
    body = _check(old, "GET", VERSION, 200)
    assert (body["current_version"], body["latest_version"], body["can_upgrade"]) == (
        "2.22.05.000",
        LATEST_PROXY_VERSION,
        True,
    )
    assert "risk" in body
    assert _check(latest, "GET", VERSION, 200)["can_upgrade"] is False
    assert _error_code(_check(other_engine, "GET", VERSION, 404)) == "APIGW.0101"


async def test_upgrade_runs_as_a_job_on_the_clock_and_lifts_dbs_05000001() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_seconds=(2.0, 6.0))
    wanted = {"source_version": "2.22.05.000", "target_version": LATEST_PROXY_VERSION}
    async with _client(sandbox) as client:
        refused = await _signed(client, "PUT", f"{OLD}/connection-pool-type", body=SESSION, at=clock.t)
        started = await _signed(client, "POST", f"{OLD}/upgrade-version", body=_body(wanted), at=clock.t)
        again = await _signed(client, "POST", f"{OLD}/upgrade-version", body=_body(wanted), at=clock.t)
        result = _check(started, "POST", UPGRADE, 200)["update_result"]
        assert isinstance(result, list) and result[0]["state"] == "ACCEPT"
        job_id = result[0]["workflow_id"]
        clock.t = T0 + 3
        running = await _signed(client, "GET", f"/v3/{P}/jobs", [("id", job_id)], at=clock.t)
        clock.t = T0 + 7
        done = await _signed(client, "GET", f"/v3/{P}/jobs", [("id", job_id)], at=clock.t)
        version = await _signed(client, "GET", f"{OLD}/taurusproxy/proxy-version", at=clock.t)
        switched = await _signed(client, "PUT", f"{OLD}/connection-pool-type", body=SESSION, at=clock.t)
    assert _error_code(_check(refused, "PUT", POOL_TYPE, 400)) == "DBS.05000001"
    assert _error_code(_check(again, "POST", UPGRADE, 409)) == "DBS.200019"  # one job per proxy at a time
    assert _check(running, "GET", JOBS, 200)["job"]["status"] == "Running"  # type: ignore[index]
    job = _check(done, "GET", JOBS, 200)["job"]
    assert isinstance(job, dict) and (job["status"], job["name"]) == ("Completed", "UpgradeProxyVersion")
    assert _check(version, "GET", VERSION, 200)["current_version"] == LATEST_PROXY_VERSION
    assert "job_id" in _check(switched, "PUT", POOL_TYPE, 200)


@pytest.mark.parametrize(
    "body",
    [
        {"source_version": "2.22.04.000", "target_version": LATEST_PROXY_VERSION},  # not the current version
        {"source_version": "2.22.05.000", "target_version": "2.22.01.000"},  # lower than the source
        {"source_version": "2.22.05.000", "target_version": "9.0.0.0"},  # not offered
        {"source_version": "2.22.05.000"},
        ["2.22.05.000"],
    ],
)
async def test_upgrade_with_a_bad_body_is_400_and_starts_nothing(body: object) -> None:
    sandbox = TaurusDBSandbox(clock=_Clock())
    async with _client(sandbox) as client:
        response = await _signed(client, "POST", f"{OLD}/upgrade-version", body=_body(body))
    assert _error_code(_check(response, "POST", UPGRADE, 400)) == "DBS.200001"
    assert sandbox.jobs == {}


async def test_configurations_page_filter_and_refuse_a_bad_limit() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        every = await _signed(client, "GET", f"{PROD}/configurations")
        page = await _signed(client, "GET", f"{PROD}/configurations", [("limit", 2), ("offset", 2)])
        one = await _signed(client, "GET", f"{PROD}/configurations", [("name", "multiStatementType")])
        bad = await _signed(client, "GET", f"{PROD}/configurations", [("limit", 0)])
    rows = _check(every, "GET", CONFIGS, 200)["configurations"]
    assert isinstance(rows, list) and len(rows) == 5 and all(r["elem_type"] == "system" for r in rows)
    paged = _check(page, "GET", CONFIGS, 200)
    assert paged["total_count"] == 5 and len(paged["configurations"]) == 2  # type: ignore[arg-type]
    assert _check(one, "GET", CONFIGS, 200)["configurations"] == [rows[0]]
    assert _error_code(_check(bad, "GET", CONFIGS, 400)) == "DBS.200001"


@pytest.mark.parametrize(
    "item",
    [
        {"name": "no_such_parameter", "value": "1", "elem_type": "system"},
        {"name": "max_connections", "value": "0", "elem_type": "system"},
        {"name": "max_connections", "value": "٣", "elem_type": "system"},  # a digit, but not ASCII
        {"name": "multiStatementType", "value": "strict", "elem_type": "system"},  # case matters
        {"name": "max_connections", "value": 900, "elem_type": "system"},  # values are strings
    ],
)
async def test_configurations_put_refuses_unknown_names_and_out_of_range_values(item: dict[str, object]) -> None:
    sandbox = TaurusDBSandbox(clock=_Clock())
    async with _client(sandbox) as client:
        response = await _signed(client, "PUT", f"{PROD}/configurations", body=_body({"configurations": [item]}))
    body = _check(response, "PUT", CONFIGS, 400)
    assert _error_code(body) == "DBS.200001" and str(item["value"]) not in str(body["error_msg"])
    assert sandbox.jobs == {}


async def test_configurations_and_consistency_change_when_their_jobs_complete() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_seconds=(1.0, 2.0))
    change = {"configurations": [{"name": "multiStatementType", "value": "Loose", "elem_type": "system"}]}
    async with _client(sandbox) as client:
        put = await _signed(client, "PUT", f"{PROD}/configurations", body=_body(change))
        clock.t = T0 + 3
        mode = {"session_consistence": "true", "consistence_mode": "global"}
        consist = await _signed(client, "PUT", f"{PROD}/session-consistence", body=_body(mode), at=clock.t)
        bad = await _signed(client, "PUT", f"{PROD}/session-consistence", body=_body({"consistence_mode": "x"}))
        clock.t = T0 + 6
        after = await _signed(client, "GET", f"{PROD}/configurations", [("name", "multiStatementType")], at=clock.t)
    assert "job_id" in _check(put, "PUT", CONFIGS, 200) and "job_id" in _check(consist, "PUT", CONSISTENCE, 200)
    assert _error_code(_check(bad, "PUT", CONSISTENCE, 400)) == "DBS.200001"
    assert _check(after, "GET", CONFIGS, 200)["configurations"][0]["value"] == "Loose"  # type: ignore[index]
    sandbox.settle()
    assert sandbox.proxies[PROXY_SWITCHABLE].consistence_mode == "global"


def test_the_state_file_keeps_a_proxy_s_kernel_flag_consistency_and_parameters() -> None:
    """`poolpilot call` on the persistent sandbox: an upgrade, a parameter or a consistency change made by one call
    must still be there for the next (each call loads the state file into fresh seeds)."""
    first = TaurusDBSandbox()
    pid, proxy = next((pid, p) for pid, p in first.proxies.items() if p.kernel_too_early)
    name = next(iter(proxy.parameters))
    proxy.version, proxy.switch_connection_pool_type_enabled = LATEST_PROXY_VERSION, True
    proxy.consistence_mode, proxy.parameters[name] = "eventual", "changed"
    second = TaurusDBSandbox()
    second.import_state(json.loads(json.dumps(first.export_state())))
    again = second.proxies[pid]
    assert (again.version, again.switch_connection_pool_type_enabled) == (LATEST_PROXY_VERSION, True)
    assert (again.consistence_mode, again.parameters[name]) == ("eventual", "changed")
    assert not again.kernel_too_early
    # A file written before these tools ([pool_type, updated_at] per proxy) still loads, the rest from the seeds.
    old = TaurusDBSandbox()
    old.import_state({"proxies": {pid: ["SESSION", "2025-10-01T00:00:00+0000"]}, "jobs": []})
    assert (old.proxies[pid].connection_pool_type, old.proxies[pid].kernel_too_early) == ("SESSION", True)
