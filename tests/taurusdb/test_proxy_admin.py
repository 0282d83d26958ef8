"""The proxy-administration toolset through a real MCP client over the in-process sandbox: version and upgrade (which
unblocks SESSION after DBS.05000001), parameters, session consistency; the guard, jobs with progress on the fake
clock, timeouts, validation that sends nothing and never echoes, and the refusal of a stale confirmation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from poolpilot.tools.taurusdb.sandbox import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SWITCHABLE,
)
from poolpilot.tools.taurusdb.sandbox_seed import LATEST_PROXY_VERSION
from tests.support import ManualClock
from tests.taurusdb.harness import SET, WireSandbox, session, switch_args

pytestmark = pytest.mark.anyio

VERSION = "taurusdb_get_proxy_version"
UPGRADE = "taurusdb_upgrade_proxy_version"
PARAMS = "taurusdb_get_proxy_parameters"
SET_PARAMS = "taurusdb_set_proxy_parameters"
CONSISTENCY = "taurusdb_set_proxy_session_consistency"
OLD = {"instance_id": INSTANCE_ANALYTICS, "proxy_id": PROXY_OLD_KERNEL}
PROD = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE}


def _wire(**kwargs: Any) -> tuple[WireSandbox, ManualClock]:
    clock = ManualClock()
    return WireSandbox(clock=clock, sleep=clock.sleep, **kwargs), clock


def _setting(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


# -- version and upgrade ----------------------------------------------------------------------------


async def test_get_proxy_version_reports_latest_can_upgrade_and_risk(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        old = await s.ok(VERSION, **OLD)
        assert (old["current_version"], old["latest_version"], old["can_upgrade"]) == (
            "2.22.05.000",
            LATEST_PROXY_VERSION,
            True,
        )
        assert old["risk"]["level"] == 1 and "disconnections" in old["risk"]["influence"]
        latest = await s.ok(VERSION, **PROD)
        assert latest["can_upgrade"] is False and latest["risk"] is None


async def test_upgrade_with_token_follows_the_job_and_unblocks_session(tmp_path: Path) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        token = (await s.ok(SET, **switch_args(PROXY_OLD_KERNEL)))["confirm_token"]
        blocked = await s.error(SET, **switch_args(PROXY_OLD_KERNEL), confirm_token=token)
        assert blocked["provider_code"] == "DBS.05000001" and "taurusdb_upgrade_proxy_version" in blocked["hint"]
        preview = await s.ok(UPGRADE, **OLD)
        assert preview["confirmation_required"] and (preview["before"], preview["after"]) == (
            "2.22.05.000",
            LATEST_PROXY_VERSION,
        )
        assert "connections" in preview["preview"]["impact"] and "drop" in preview["preview"]["impact"]
        assert sandbox.sent("POST", "/upgrade-version") == []  # a preview sends nothing
        done = await s.ok(UPGRADE, **OLD, confirm_token=preview["confirm_token"])
        assert done["executed"] and done["wait_outcome"] == "finished" and done["job"]["status"] == "Completed"
        assert done["version_now"] == LATEST_PROXY_VERSION and "upgraded from" in done["message"]
        sent = sandbox.sent("POST", "/upgrade-version")
        assert len(sent) == 1 and sent[0].headers["content-type"] == "application/json;charset=utf-8"
        values = [value for value, _, _ in s.progress]
        assert values == sorted(set(values)) and values[0] == 0 and values[-1] == 100
        assert s.clock.slept[:2] == [1.0, 2.0]
        switched = await s.confirmed(**switch_args(PROXY_OLD_KERNEL))
        assert switched["pool_type_now"] == "SESSION"


async def test_upgrade_through_elicitation_asks_once_with_the_versions(tmp_path: Path) -> None:
    async with session(tmp_path, answer="yes") as s:
        done = await s.ok(UPGRADE, **OLD, wait=False)
        assert done["confirmed_by"] == "elicitation" and done["wait_outcome"] == "not_waited"
        assert len(s.asked) == 1 and '"2.22.05.000" → "2.25.06.000"' in s.asked[0]
        assert done["job"]["job_id"] in done["message"]


async def test_upgrade_timeout_is_a_result_with_the_job_to_follow(tmp_path: Path) -> None:
    sandbox, clock = _wire(job_seconds=(2.0, 10_000.0))
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        result = await s.confirmed(UPGRADE, **OLD, timeout_s=20)
        assert result["executed"] and result["wait_outcome"] == "timed_out" and result["version_now"] is None
        assert "still Running after 20 s" in result["message"] and result["job"]["job_id"] in result["message"]
        assert sum(s.clock.slept) == pytest.approx(20.0)


async def test_upgrade_refusals_name_target_version_and_send_nothing(tmp_path: Path) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        latest = await s.error(UPGRADE, **PROD)
        assert latest["code"] == "not_supported" and latest["field"] == "target_version"
        assert "can_upgrade=false" in latest["message"]
        older = await s.error(UPGRADE, **OLD, target_version="2.0.1.0")
        assert older["code"] == "validation_error" and older["field"] == "target_version"
        assert "2.0.1.0" not in older["message"] and older["allowed"] == [LATEST_PROXY_VERSION]
        beyond = await s.error(UPGRADE, **OLD, target_version="9.0.0.0")
        assert beyond["field"] == "target_version" and "9.0.0.0" not in str(beyond)
        assert sandbox.sent("POST", "/upgrade-version") == []


async def test_upgrade_is_refused_when_the_proxy_changed_after_the_preview(tmp_path: Path) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        preview = await s.ok(UPGRADE, **OLD)
        sandbox.taurusdb.proxies[PROXY_OLD_KERNEL].version = "2.24.12.000"  # someone else upgraded meanwhile
        err = await s.error(UPGRADE, **OLD, confirm_token=preview["confirm_token"])
        assert err["code"] == "confirmation_invalid"
        assert sandbox.sent("POST", "/upgrade-version") == []


async def test_flag_false_proxy_can_switch_after_the_upgrade(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        args = {"instance_id": INSTANCE_ANALYTICS, "proxy_id": PROXY_FLAG_FALSE}
        await s.confirmed(UPGRADE, **args)
        switched = await s.confirmed(**switch_args(PROXY_FLAG_FALSE))
        assert switched["pool_type_now"] == "SESSION"


# -- parameters -------------------------------------------------------------------------------------


async def test_get_proxy_parameters_pages_and_filters(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        first = await s.ok(PARAMS, **PROD, page_size=2)
        assert first["total"] == 5 and len(first["rows"]) == 2 and first["next_cursor"] == "2"
        assert first["rows"][0] == {
            "name": "multiStatementType",
            "value": "Strict",
            "value_range": "Strict,Loose,Parse",
            "data_type": "string",
            "elem_type": "system",
            "description": "How multi-statements are routed.",
        }
        last = await s.ok(PARAMS, **PROD, page_size=2, cursor="4")
        assert len(last["rows"]) == 1 and last["next_cursor"] is None
        one = await s.ok(PARAMS, **PROD, name="max_connections")
        assert [r["value"] for r in one["rows"]] == ["20000"]


async def test_set_parameters_previews_before_after_and_applies_with_the_job(tmp_path: Path) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        wanted = [_setting("max_connections", "900"), _setting("multiStatementType", "Strict")]  # 2nd: unchanged
        preview = await s.ok(SET_PARAMS, **PROD, parameters=wanted)
        assert preview["changes"] == [{"name": "max_connections", "before": "20000", "after": "900"}]
        assert "restart" in preview["preview"]["impact"]
        done = await s.ok(SET_PARAMS, **PROD, parameters=wanted, confirm_token=preview["confirm_token"])
        assert done["executed"] and done["job"]["status"] == "Completed"
        (put,) = sandbox.sent("PUT", "/configurations")
        sent = b'{"configurations": [{"name": "max_connections", "value": "900", "elem_type": "system"}]}'
        assert put.content == sent  # the SDK's shape: name, value, elem_type from the current list
        assert (await s.ok(PARAMS, **PROD, name="max_connections"))["rows"][0]["value"] == "900"
        again = await s.ok(SET_PARAMS, **PROD, parameters=wanted)
        assert again["outcome"] == "no_change" and not again["executed"]


@pytest.mark.parametrize(
    ("setting", "field", "allowed"),
    [
        (_setting("max_connections", "70000"), "parameters.max_connections", ["1-50000"]),
        (_setting("max_connections", "٣٣"), "parameters.max_connections", ["1-50000"]),  # digits, not ASCII
        (_setting("multiStatementType", "strict"), "parameters.multiStatementType", ["Strict", "Loose", "Parse"]),
        (_setting("Max_connections", "9"), "parameters", None),  # names are case-sensitive
    ],
)
async def test_set_parameters_checks_names_and_ranges_before_sending(
    tmp_path: Path, setting: dict[str, str], field: str, allowed: list[str] | None
) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        err = await s.error(SET_PARAMS, **PROD, parameters=[setting])
        assert err["code"] == "validation_error" and err["field"] == field
        if allowed is not None:
            assert err["allowed"] == allowed
        else:
            assert "max_connections" in err["allowed"] and "Max_connections" not in err["message"]
        assert setting["value"] not in err["message"]
        assert sandbox.sent("PUT", "/configurations") == []


@pytest.mark.parametrize(
    "parameters",
    [
        [_setting("max_connections", "9\u2028Impact: none")],  # a line separator in a value
        [_setting("max_connections", "9\u202e")],  # a bidi override
        [_setting("max\u200bconnections", "9")],  # a zero-width space in a name
        [_setting("../max_connections", "9")],
        [_setting("max_connections", "9"), _setting("max_connections", "10")],  # twice
        [],
        [{"name": "max_connections", "value": "9", "elem_type": "user"}],  # elem_type comes from TaurusDB
    ],
)
async def test_set_parameters_hostile_input_is_refused_without_echo(
    tmp_path: Path, parameters: list[dict[str, str]]
) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        err = await s.error(SET_PARAMS, **PROD, parameters=parameters)
        assert err["code"] == "validation_error" and err["field"].startswith("parameters")
        assert "Impact: none" not in str(err) and "\u202e" not in str(err)
        assert sandbox.sent("PUT", "/configurations") == []


# -- session consistency ----------------------------------------------------------------------------


async def test_set_session_consistency_shows_the_current_mode_and_applies_it(tmp_path: Path) -> None:
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        same = await s.ok(CONSISTENCY, **PROD, consistence_mode="session")
        assert same["outcome"] == "no_change" and same["before"] == "session"
        done = await s.confirmed(CONSISTENCY, **PROD, consistence_mode="eventual")
        assert (done["before"], done["after"], done["job"]["status"]) == ("session", "eventual", "Completed")
        assert done["mode_now"] == "eventual" and "now uses eventual consistency" in done["message"]  # read back
        (put,) = sandbox.sent("PUT", "/session-consistence")
        assert put.content == b'{"session_consistence": "false", "consistence_mode": "eventual"}'
        sandbox.taurusdb.settle()
        assert sandbox.taurusdb.proxies[PROXY_SWITCHABLE].consistence_mode == "eventual"


async def test_two_confirmed_parameter_changes_raced_on_one_proxy_send_one_request(tmp_path: Path) -> None:
    """Both previews were right when made; the proxy's lock makes the second re-read see the first's change."""
    sandbox, clock = _wire()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        values = ("900", "800")
        previews = [await s.ok(SET_PARAMS, **PROD, parameters=[_setting("max_connections", v)]) for v in values]
        results: list[Any] = []

        async def confirm(value: str, token: str) -> None:
            args = {**PROD, "parameters": [_setting("max_connections", value)], "confirm_token": token}
            results.append(await s.call(SET_PARAMS, args))

        async with anyio.create_task_group() as tg:
            for value, preview in zip(values, previews, strict=True):
                tg.start_soon(confirm, value, preview["confirm_token"])
        executed = [r for r in results if not r.is_error and r.structured_content["executed"]]
        refused = [r.structured_content for r in results if r.is_error]
        assert len(executed) == 1 and [e["code"] for e in refused] == ["confirmation_invalid"]
        assert len(sandbox.sent("PUT", "/configurations")) == 1
