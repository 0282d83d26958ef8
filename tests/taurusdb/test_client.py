"""What the TaurusDB client puts on the wire, and how it handles failures of the never-resent PUT."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from poolpilot.tools.taurusdb.client import parse_error
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SWITCHABLE, SANDBOX_AK, SANDBOX_PROJECT_ID, SANDBOX_SK
from poolpilot.tools.taurusdb.settings import TaurusDBSettings
from poolpilot.tools.taurusdb.signer import verify_request
from tests.support import ManualClock
from tests.taurusdb.harness import SET, WireSandbox, session, switch_args

pytestmark = pytest.mark.anyio

SIGNED = "content-type;host;user-agent;x-language;x-project-id;x-sdk-date"


def _wire_sandbox() -> tuple[WireSandbox, ManualClock]:
    clock = ManualClock()
    return WireSandbox(clock=clock, sleep=clock.sleep), clock


async def test_requests_are_shaped_and_signed_like_the_huawei_sdk(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    async with session(
        tmp_path, sandbox=sandbox, clock=clock, providers={"taurusdb": TaurusDBSettings(language="zh-cn")}
    ) as s:
        await s.confirmed(**switch_args())
    (get, *_) = sandbox.sent("GET", "/proxies")
    assert get.url.raw_path == f"/v3/{SANDBOX_PROJECT_ID}/instances/{INSTANCE_PROD}/proxies?limit=100&offset=0".encode()
    assert get.headers["content-type"] == "application/json"  # on GETs too, as the SDK sends it
    (put,) = sandbox.sent("PUT", "/connection-pool-type")
    assert put.headers["content-type"] == "application/json;charset=utf-8"
    assert put.content == b'{"connection_pool_type": "SESSION"}'  # simplejson's separators, as the SDK
    for request in (get, put):
        assert request.headers["x-project-id"] == SANDBOX_PROJECT_ID
        assert request.headers["x-language"] == "zh-cn"
        assert "x-auth-token" not in request.headers
        auth = request.headers["authorization"]
        assert auth.startswith(f"SDK-HMAC-SHA256 Access={SANDBOX_AK}, SignedHeaders={SIGNED}, Signature=")
        # Every request verifies against what was sent, at the time it was sent.
        path, _, query = request.url.raw_path.decode().partition("?")
        assert (
            verify_request(
                request.method,
                path,
                query,
                dict(request.headers),
                request.content,
                secret_for={SANDBOX_AK: SANDBOX_SK}.get,
                now=clock.now,
            )
            is None
        )
    (job, *_) = sandbox.sent("GET", "/jobs")
    assert job.url.query.startswith(b"id=")


async def test_query_sent_is_the_canonical_one(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        await s.ok("taurusdb_list_instances", page_size=5, cursor="1")
    (request,) = sandbox.sent("GET", "/instances")
    assert request.url.query == b"limit=5&offset=1"  # sorted by key, as signed


async def test_put_answering_500_is_not_resent(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.faults.add("500@set_pool_type")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        err = await s.error(SET, **switch_args(), confirm_token=(await s.ok(SET, **switch_args()))["confirm_token"])
        assert err["code"] == "upstream_error" and err["http_status"] == 500
        assert err["provider_code"] == "DBS.05000000"
        assert "may or may not have started" in err["message"] and "still shows CLOSED" in err["message"]
        assert "Do not resend" in err["hint"]
        assert len(sandbox.sent("PUT", "/connection-pool-type")) == 1
        assert s.sandbox.taurusdb.jobs == {}


async def test_put_applied_then_500_is_reported_honestly_and_not_resent(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.faults.add("applied-500@set_pool_type")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        token = (await s.ok(SET, **switch_args()))["confirm_token"]
        err = await s.error(SET, **switch_args(), confirm_token=token)
        assert "may or may not have started" in err["message"]
        assert len(sandbox.sent("PUT", "/connection-pool-type")) == 1
        (job,) = s.sandbox.taurusdb.jobs.values()  # it did start one: exactly one
        # Once the job is done, the read-back shows it, and a new call is a no-op.
        s.clock.advance(60)
        again = await s.ok(SET, **switch_args())
        assert again["outcome"] == "no_change" and job.applied


async def test_put_answering_500_after_taking_effect_is_reported_done(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.taurusdb.job_seconds = (0.0, 0.0)  # the change lands before the answer is lost
    sandbox.faults.add("applied-500@set_pool_type")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        done = await s.confirmed(**switch_args())
        assert done["executed"] is True and done["job"] is None and done["pool_type_now"] == "SESSION"
        assert "HTTP 500" in done["message"] and "now shows SESSION" in done["message"]
        assert len(sandbox.sent("PUT", "/connection-pool-type")) == 1


async def test_dropped_connection_on_put_is_not_resent(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.faults.add("drop@set_pool_type")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        token = (await s.ok(SET, **switch_args()))["confirm_token"]
        err = await s.error(SET, **switch_args(), confirm_token=token)
        assert err["code"] == "connection_error" and "may or may not have started" in err["message"]
        assert len(sandbox.sent("PUT", "/connection-pool-type")) == 1


async def test_reads_are_retried_on_5xx(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.faults.add("503@list_proxies#2")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        listed = await s.ok("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        assert len(listed["rows"]) == 2
        assert len(sandbox.sent("GET", "/proxies")) == 3


async def test_job_poll_failure_still_returns_the_job_id(tmp_path: Path) -> None:
    sandbox, clock = _wire_sandbox()
    sandbox.faults.add("500@get_job")
    async with session(tmp_path, sandbox=sandbox, clock=clock) as s:
        result = await s.confirmed(**switch_args())
        assert result["executed"] is True and result["wait_outcome"] == "poll_failed"
        job_id = result["job"]["job_id"]
        assert f'taurusdb_get_job(job_id="{job_id}")' in result["message"] and "upstream_error" in result["message"]
        assert PROXY_SWITCHABLE in s.sandbox.taurusdb.jobs[job_id].proxy_id


def test_parse_error_reads_the_sdk_variants_and_the_header_request_id() -> None:
    for body in (
        {"error_code": "DBS.200001", "error_msg": "Parameter error."},
        {"errorCode": "DBS.200001", "errorMsg": "Parameter error."},
        {"code": "DBS.200001", "message": "Parameter error."},
    ):
        parts = parse_error(httpx2.Response(400, content=json.dumps(body).encode(), headers={"X-Request-Id": "r1"}))
        assert (parts.provider_code, parts.message, parts.request_id) == ("DBS.200001", "Parameter error.", "r1")
    bare = parse_error(httpx2.Response(429))
    assert bare.provider_code is None and "429" in (bare.message or "")
