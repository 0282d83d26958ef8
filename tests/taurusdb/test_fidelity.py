"""Live fidelity on TaurusDB: the job visibility window, tolerant job bodies, temporary credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.kernel.shapes import compose, extended, nulled
from poolpilot.server.shell.app import build_app
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, SANDBOX_AK, SANDBOX_PROJECT_ID, SANDBOX_SK
from poolpilot.tools.taurusdb.settings import TaurusDBSettings
from poolpilot.tools.taurusdb.signer import sign_request
from tests.support import ManualClock, Sandbox, served
from tests.taurusdb.harness import session, switch_args

pytestmark = pytest.mark.anyio

IDS = frozenset({"job", "job_id", "id", "proxy", "pool_id", "instances", "proxy_list", "total_count"})


def _job_body(change: dict[str, Any]) -> Any:
    """A shape that rewrites the job object of every job answer."""

    def shape(endpoint: str, body: dict[str, object]) -> dict[str, object]:
        job = body.get("job")
        if endpoint != "get_job" or not isinstance(job, dict):
            return body
        return {**body, "job": {**job, **change}}

    return shape


async def test_a_job_documented_empty_at_creation_may_come_with_nulls(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    sandbox.taurusdb.shape = _job_body({"created": None, "ended": None, "process": None, "fail_reason": None})
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args())
        assert done["wait_outcome"] == "finished" and done["job"]["status"] == "Completed"
        assert done["job"]["created"] is None and done["pool_type_now"] == "SESSION"


async def test_an_unknown_job_status_is_kept_and_flagged_while_waiting_goes_on(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    sandbox.taurusdb.shape = _job_body({"status": "Queued", "process": "\u00b2"})  # "²" is a digit to isdigit()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args(timeout_s=20))
        assert done["wait_outcome"] == "timed_out" and done["job"]["status"] == "Running"
        assert done["job"]["provider_status"] == "Queued" and done["job"]["progress"] is None
        job = await s.ok("taurusdb_get_job", job_id=done["job"]["job_id"])
        assert job["job"]["provider_status"] == "Queued"


async def test_a_known_job_status_has_no_provider_status(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        done = await s.confirmed(**switch_args())
        assert done["job"]["status"] == "Completed" and done["job"]["provider_status"] is None


@pytest.mark.parametrize(
    "fault", ["500@get_job#8", "503@get_job#4", "404@get_job#2", "400@get_job#3"], ids=["500", "503", "404", "400"]
)
async def test_early_non_final_answers_are_pending_inside_the_visibility_window(tmp_path: Path, fault: str) -> None:
    clock = ManualClock()
    faults = FaultPlan()
    faults.add(fault)
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=faults)
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args())
        assert done["wait_outcome"] == "finished" and done["job"]["status"] == "Completed", done["message"]
        assert faults.fired > 0


async def test_a_200_without_a_job_is_pending_then_the_honest_error_after_the_window(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)

    def no_job(endpoint: str, body: dict[str, object]) -> dict[str, object]:
        return {"jobs": []} if endpoint == "get_job" else body

    sandbox.taurusdb.shape = no_job
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args(timeout_s=120))
        job_id = done["job"]["job_id"]
        assert done["executed"] is True and done["wait_outcome"] == "poll_failed"
        assert job_id in done["message"] and "without 'job'" in done["message"]
        assert 30 <= sum(s.clock.slept) < 60  # pending for the whole window, reported right after it


async def test_auth_failure_while_polling_is_reported_at_once_with_the_job_id(tmp_path: Path) -> None:
    clock = ManualClock()
    faults = FaultPlan()
    faults.add("401@get_job")
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=faults)
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args())
        assert done["wait_outcome"] == "poll_failed" and done["job"]["job_id"] in done["message"]
        assert faults.fired == 1 and sum(s.clock.slept) < 5  # never retried: 401s lock the AK


async def test_tools_read_nulled_and_extended_shapes(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    sandbox.taurusdb.shape = compose(nulled(IDS), extended)
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        instances = await s.ok("taurusdb_list_instances")
        assert len(instances["rows"]) == 2 and instances["rows"][0]["name"] == ""
        proxies = await s.ok("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        assert {row["pool_type"] for row in proxies["rows"]} == {""} and proxies["rows"][0]["node_count"] == 0


# -- temporary credentials (HUAWEICLOUD_SDK_SECURITY_TOKEN) -----------------------------------------------


def _live(tmp_path: Path, url: str, clock: ManualClock, **more: Any) -> Client:
    own = TaurusDBSettings(ak=SANDBOX_AK, sk=SANDBOX_SK, project_id=SANDBOX_PROJECT_ID, url=url, **more)
    settings = Settings(
        backend="live", providers={"taurusdb": own}, toolsets=("taurusdb",), audit_log=str(tmp_path / "audit.jsonl")
    )
    return Client(build_app(settings, clock=clock, sleep=clock.sleep), raise_exceptions=True)


async def test_a_security_token_is_sent_signed_and_accepted(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    with served(sandbox) as url:
        async with _live(tmp_path, url, clock, security_token="sts-temporary-token-0123") as client:
            with anyio.fail_after(20):
                listed = await client.call_tool("taurusdb_list_instances", {})
    assert not listed.is_error, listed.content
    assert sandbox.taurusdb.security_tokens == ["sts-temporary-token-0123"]


async def test_without_a_security_token_none_is_sent(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    with served(sandbox) as url:
        async with _live(tmp_path, url, clock) as client:
            with anyio.fail_after(20):
                listed = await client.call_tool("taurusdb_list_instances", {})
    assert not listed.is_error and sandbox.taurusdb.security_tokens == []


async def test_the_sandbox_refuses_a_security_token_left_out_of_the_signature() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    path = f"/v3/{SANDBOX_PROJECT_ID}/instances"
    headers = {"Host": "sandbox.invalid", "Content-Type": "application/json", "X-Project-Id": SANDBOX_PROJECT_ID}
    signed = sign_request("GET", "sandbox.invalid", path, [], headers, None, ak=SANDBOX_AK, sk=SANDBOX_SK, now=clock)
    async with httpx2.AsyncClient(transport=sandbox.transport(), base_url="http://sandbox.invalid") as http:
        with anyio.fail_after(10):
            response = await http.get(path, headers={**headers, **signed, "X-Security-Token": "added-after"})
    assert response.status_code == 401 and "x-security-token" in response.json()["error_msg"]
    assert sandbox.taurusdb.security_tokens == []
