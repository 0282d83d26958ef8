"""The TaurusDB tools through a real MCP client over the in-process sandbox: reads, the guarded switch with its
job and progress notifications, and every path that must send nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.tools.taurusdb.sandbox import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SESSION,
    PROXY_SWITCHABLE,
)
from tests.support import ManualClock, Sandbox
from tests.taurusdb.harness import MODES, SET, WireSandbox, failing_jobs, session, switch_args

pytestmark = pytest.mark.anyio


def _increasing(progress: list[tuple[float, float | None, str | None]]) -> list[float]:
    values = [value for value, _, _ in progress]
    assert values == sorted(set(values)), "MCP progress must increase with every notification"
    assert all(total == 100 for _, total, _ in progress)
    return values


# -- reads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_list_instances_pages_compact_rows(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode) as s:
        first = await s.ok("taurusdb_list_instances", page_size=1)
        assert first["backend"] == "sandbox" and first["total"] == 2
        assert first["rows"] == [
            {
                "id": INSTANCE_PROD,
                "name": "taurus-prod",
                "status": "ACTIVE",
                "region": "cn-north-4",
                "version": "8.0.30",
                "kernel_version": "2.0.57.240900",
            }
        ]
        second = await s.ok("taurusdb_list_instances", page_size=1, cursor=first["next_cursor"])
        assert [r["id"] for r in second["rows"]] == [INSTANCE_ANALYTICS]
        assert second["next_cursor"] is None


async def test_list_proxies_says_which_can_switch_and_why_not(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        listed = await s.ok("taurusdb_list_proxies", instance_id=INSTANCE_ANALYTICS)
        rows = {r["proxy_id"]: r for r in listed["rows"]}
        # The old-kernel proxy claims it can switch: only the PUT finds out (DBS.05000001).
        assert rows[PROXY_OLD_KERNEL] == {
            "proxy_id": PROXY_OLD_KERNEL,
            "name": "proxy-analytics-legacy",
            "status": "ACTIVE",
            "pool_type": "CLOSED",
            "switchable": True,
            "why_not": None,
            "node_count": 1,
        }
        assert rows[PROXY_FLAG_FALSE]["switchable"] is False
        assert "switch_connection_pool_type_enabled is false" in rows[PROXY_FLAG_FALSE]["why_not"]
        prod = await s.ok("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        assert {r["proxy_id"]: r["pool_type"] for r in prod["rows"]} == {
            PROXY_SWITCHABLE: "CLOSED",
            PROXY_SESSION: "SESSION",
        }


async def test_list_proxies_of_unknown_instance_is_not_found_with_provider_code(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error("taurusdb_list_proxies", instance_id="0" * 32 + "in07")
        assert err["code"] == "not_found" and err["provider_code"] == "DBS.201028"
        assert err["http_status"] == 400 and err["request_id"]
        assert "taurusdb_list_instances" in err["hint"]


# -- the switch lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_token_path_waits_for_the_job_with_progress(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode) as s:
        done = await s.confirmed(**switch_args())
        assert done["outcome"] == "executed" and done["executed"] is True and done["confirmed_by"] == "token"
        assert (done["before"], done["after"], done["pool_type_now"]) == ("CLOSED", "SESSION", "SESSION")
        assert done["wait_outcome"] == "finished"
        job = done["job"]
        assert job["status"] == "Completed" and job["progress"] == 100 and job["fail_reason"] is None
        assert job["job_id"] in done["message"] and 'switched from "CLOSED" to SESSION' in done["message"]
        assert s.pool_type(PROXY_SWITCHABLE) == "SESSION"
        # Received by the client: accepted at 0, the job Running part way, then done at 100.
        values = _increasing(s.progress)
        assert values[0] == 0 and values[-1] == 100 and len(values) >= 3
        messages = [m or "" for _, _, m in s.progress]
        assert any("Running" in m for m in messages) and "Completed" in messages[-1]
        assert all(job["job_id"] in m for m in messages)
        # Polled with backoff on the injected clock, never a real sleep.
        assert s.clock.slept[:3] == [1.0, 2.0, 4.0]
        executed = [line for line in s.audit_lines() if line.get("outcome") == "executed"]
        assert executed[-1]["job_id"] == job["job_id"] and executed[-1]["confirmed_by"] == "token"


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_through_elicitation_reports_progress(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="yes") as s:
        done = await s.ok(SET, **switch_args(pool_type="SESSION"))
        assert done["confirmed_by"] == "elicitation" and done["job"]["status"] == "Completed"
        assert s.asked and '"CLOSED" → "SESSION"' in s.asked[0]
        assert _increasing(s.progress)[-1] == 100
        assert s.pool_type(PROXY_SWITCHABLE) == "SESSION"
        s.progress.clear()
        back = await s.ok(SET, **switch_args(pool_type="CLOSED"))
        assert (back["before"], back["pool_type_now"]) == ("SESSION", "CLOSED")
        assert _increasing(s.progress)[-1] == 100


@pytest.mark.parametrize("answer", ["no", "decline", "cancel"])
async def test_set_pool_type_not_confirmed_starts_no_job(tmp_path: Path, answer: str) -> None:
    async with session(tmp_path, answer=answer) as s:  # type: ignore[arg-type]
        result = await s.ok(SET, **switch_args())
        assert result["executed"] is False and result["job"] is None
        assert result["outcome"] == ("cancelled" if answer == "cancel" else "declined")
        assert s.sandbox.taurusdb.jobs == {}


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_already_in_state_sends_only_the_read(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="yes") as s:
        before = s.sandbox.requests
        result = await s.ok(SET, **switch_args(PROXY_SESSION, "SESSION"))
        assert result["outcome"] == "no_change" and result["executed"] is False
        assert result["job"] is None and result["confirm_token"] is None
        assert "already uses SESSION" in result["message"]
        assert s.sandbox.requests == before + 1  # the proxy list, nothing else
        assert s.asked == [] and s.sandbox.taurusdb.jobs == {} and s.progress == []


async def test_set_pool_type_without_wait_returns_the_job_to_follow(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        started = await s.confirmed(**switch_args(wait=False))
        assert started["wait_outcome"] == "not_waited" and started["job"]["status"] == "Pending"
        job_id = started["job"]["job_id"]
        assert f'taurusdb_get_job(job_id="{job_id}")' in started["message"]
        assert s.progress == [] and s.clock.slept == []
        s.clock.advance(3)
        running = await s.ok("taurusdb_get_job", job_id=job_id)
        assert running["backend"] == "sandbox"
        assert running["job"]["status"] == "Running" and running["job"]["progress"] == 25
        s.clock.advance(10)
        assert (await s.ok("taurusdb_get_job", job_id=job_id))["job"]["status"] == "Completed"


async def test_set_pool_type_while_a_job_runs_is_a_conflict(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        await s.confirmed(**switch_args(wait=False))
        # The proxy still reads CLOSED until the job completes, so the plan goes ahead and the PUT says 409.
        err = await s.error(SET, **switch_args(), confirm_token=(await s.ok(SET, **switch_args()))["confirm_token"])
        assert err["code"] == "conflict" and err["http_status"] == 409 and err["provider_code"] == "DBS.200019"
        assert "retry" in err["hint"]
        assert len(s.sandbox.taurusdb.jobs) == 1


async def test_set_pool_type_timeout_says_still_running_with_the_job_id(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, job_seconds=(2.0, 10_000.0))
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        result = await s.confirmed(**switch_args(timeout_s=30))
        assert not result.get("code") and result["executed"] is True
        assert result["wait_outcome"] == "timed_out" and result["job"]["status"] == "Running"
        assert result["pool_type_now"] is None
        assert result["job"]["job_id"] in result["message"] and "still Running after 30 s" in result["message"]
        assert sum(s.clock.slept) == pytest.approx(30.0)
        assert max(s.clock.slept) <= 10.0


async def test_set_pool_type_counts_an_invisible_new_job_as_pending(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, job_visible_after_s=5.0)
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args())
        assert done["job"]["status"] == "Completed" and done["pool_type_now"] == "SESSION"
        started = await s.confirmed(**switch_args(pool_type="CLOSED", wait=False))
        err = await s.error("taurusdb_get_job", job_id=started["job"]["job_id"])
        assert err["code"] == "not_found" and "few seconds" in err["hint"]


async def test_set_pool_type_failed_job_is_a_result_with_the_reason(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = WireSandbox(clock=clock, sleep=clock.sleep, rewrite=failing_jobs)
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        result = await s.confirmed(**switch_args())
        assert result["executed"] is True and result["wait_outcome"] == "finished"
        assert result["job"]["status"] == "Failed"
        assert result["job"]["fail_reason"] == "Failed to switch the connection pool type."
        assert 'failed: "Failed to switch' in result["message"]
        assert _increasing(s.progress)[-1] == 100


# -- refusals that send nothing (or only the PUT that the provider refuses) -------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_old_kernel_keeps_provider_code_and_hint(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="yes") as s:
        err = await s.error(SET, **switch_args(PROXY_OLD_KERNEL))
        assert err["code"] == "not_supported" and err["provider_code"] == "DBS.05000001"
        assert err["http_status"] == 400 and err["provider"] == "taurusdb"
        assert "The kernel version is too early" in err["message"]
        assert "upgrade the proxy kernel" in err["hint"]
        assert s.sandbox.taurusdb.jobs == {} and s.pool_type(PROXY_OLD_KERNEL) == "CLOSED"


@pytest.mark.parametrize("mode", MODES)
async def test_set_pool_type_flag_false_explains_and_sends_nothing(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode, answer="yes") as s:
        before = s.sandbox.requests
        err = await s.error(SET, **switch_args(PROXY_FLAG_FALSE))
        assert err["code"] == "not_supported" and "nothing was sent" in err["message"]
        assert "switch_connection_pool_type_enabled is false" in err["message"]
        assert "Upgrade the proxy kernel" in err["hint"]
        assert s.sandbox.requests == before + 1  # the proxy list only
        assert s.asked == [] and s.sandbox.taurusdb.jobs == {}


BAD_ARGS = [
    ("taurusdb_list_proxies", {"instance_id": "af315b8e6aaa41799bd9a31f2de15abcin08"}, "instance_id"),
    ("taurusdb_list_proxies", {"instance_id": "../instances"}, "instance_id"),
    (SET, {**switch_args(), "instance_id": "af315b8e6aaa41799bd9a31f2de15abc"}, "instance_id"),
    (SET, {**switch_args(), "proxy_id": "5881e1ca66af4aefbc64dc2874e55b3fin07"}, "proxy_id"),
    (SET, {**switch_args(), "proxy_id": "5881e1ca66af4aefbc64dc2874e55b3f/po01"}, "proxy_id"),
    (SET, {**switch_args(), "pool_type": "TRANSACTION"}, "pool_type"),
    (SET, {**switch_args(), "timeout_s": 4}, "timeout_s"),
    (SET, {**switch_args(), "timeout_s": 1801}, "timeout_s"),
    ("taurusdb_get_job", {"job_id": "a4217ac4?id=x"}, "job_id"),
    ("taurusdb_list_instances", {"page_size": 101}, "page_size"),
]


@pytest.mark.parametrize(("tool", "args", "field"), BAD_ARGS)
async def test_invalid_arguments_send_no_request(
    tmp_path: Path, tool: str, args: dict[str, object], field: str
) -> None:
    async with session(tmp_path, answer="yes") as s:
        before = s.sandbox.requests
        err = await s.error(tool, **args)
        assert err["code"] == "validation_error" and err["field"] == field
        assert s.sandbox.requests == before and s.asked == []
        rejected = str(args[field])
        assert rejected not in err["message"]


async def test_pool_type_error_lists_the_allowed_values(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error(SET, **switch_args(pool_type="session"))
        assert err["field"] == "pool_type" and err["allowed"] == ["CLOSED", "SESSION"]


async def test_unknown_proxy_of_a_real_instance_is_not_found_before_any_change(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        err = await s.error(SET, **{**switch_args(), "proxy_id": PROXY_OLD_KERNEL})  # on the other instance
        assert err["code"] == "not_found" and "taurusdb_list_proxies" in err["hint"]
        assert s.sandbox.taurusdb.jobs == {}
