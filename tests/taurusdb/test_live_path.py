"""The live code path: the sandbox served on a real loopback port, poolpilot pointed at it by POOLPILOT_TAURUSDB_URL
with AK/SK signing or an IAM token, exactly as it would talk to Huawei Cloud."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.shell.app import build_app
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SWITCHABLE, SANDBOX_AK, SANDBOX_PROJECT_ID, SANDBOX_SK
from poolpilot.tools.taurusdb.settings import TaurusDBSettings
from tests.support import ManualClock, Sandbox, served
from tests.taurusdb.harness import SET, switch_args

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def live_client(tmp_path: Path, url: str, clock: ManualClock, **overrides: Any) -> AsyncIterator[Client]:
    own: dict[str, Any] = {"ak": SANDBOX_AK, "sk": SANDBOX_SK, "project_id": SANDBOX_PROJECT_ID, "url": url}
    if "iam_token" in overrides:
        own = {"project_id": SANDBOX_PROJECT_ID, "url": url}
    for key in ("ak", "sk", "iam_token"):
        if key in overrides:
            own[key] = overrides.pop(key)
    settings = Settings(
        backend="live",
        providers={"taurusdb": TaurusDBSettings(**own)},
        **overrides,
        toolsets=("taurusdb",),
        audit_log=str(tmp_path / "audit.jsonl"),
    )
    # Both sides share the manual clock: signatures are dated by it and the job advances on it.
    app = build_app(settings, clock=clock, sleep=clock.sleep)
    async with Client(app, raise_exceptions=True) as client:
        yield client


def _visible(result: Any) -> str:
    return json.dumps(result.structured_content) + str(result.content) + str(result.meta)


async def test_switch_lifecycle_over_a_real_port(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with served(sandbox) as url:
        async with live_client(tmp_path, url, clock) as client:
            with anyio.fail_after(20):
                listed = await client.call_tool("taurusdb_list_instances", {})
                assert not listed.is_error and listed.structured_content is not None
                assert listed.structured_content["backend"] == "live"
                proxies = await client.call_tool("taurusdb_list_proxies", {"instance_id": INSTANCE_PROD})
                assert not proxies.is_error
                preview = await client.call_tool(SET, switch_args())
                assert preview.structured_content is not None
                token = preview.structured_content["confirm_token"]
                done = await client.call_tool(
                    SET, {**switch_args(), "confirm_token": token}, progress_callback=on_progress
                )
                assert not done.is_error and done.structured_content is not None, done.content
                assert done.structured_content["job"]["status"] == "Completed"
                assert done.structured_content["pool_type_now"] == "SESSION"
                assert SANDBOX_SK not in _visible(done)
    assert seen[0] == 0 and seen[-1] == 100
    sandbox.taurusdb.settle()
    assert sandbox.taurusdb.proxies[PROXY_SWITCHABLE].connection_pool_type == "SESSION"
    assert SANDBOX_SK not in (tmp_path / "audit.jsonl").read_text()


async def test_wrong_secret_key_is_refused_once_with_a_clock_hint(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    wrong = "wrongSecretKey0123456789abcdefghijklmnop"
    with served(sandbox) as url:
        async with live_client(tmp_path, url, clock, sk=wrong) as client:
            result = await client.call_tool("taurusdb_list_proxies", {"instance_id": INSTANCE_PROD})
    err = result.structured_content
    assert result.is_error and err is not None
    assert err["code"] == "auth_failed" and err["provider_code"] == "APIG.0301" and err["http_status"] == 401
    assert "HUAWEICLOUD_SDK_AK" in err["hint"] and "clock" in err["hint"] and "Not retried" in err["hint"]
    assert err["request_id"]
    # Never retried: more than 5 failed signatures lock the AK for 5 minutes.
    assert sandbox.requests == 1
    assert wrong not in _visible(result)


async def test_clock_skew_beyond_15_minutes_is_named(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, taurus_clock_skew_s=20 * 60)
    with served(sandbox) as url:
        async with live_client(tmp_path, url, clock) as client:
            result = await client.call_tool("taurusdb_list_instances", {})
    assert result.is_error and result.structured_content is not None
    assert "signature expired" in result.structured_content["message"]
    assert sandbox.requests == 1


async def test_iam_token_path_reads_and_a_bad_token_hints_at_it(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    with served(sandbox) as url:
        async with live_client(tmp_path, url, clock, iam_token=sandbox.taurusdb.iam_token) as client:
            good = await client.call_tool("taurusdb_list_proxies", {"instance_id": INSTANCE_PROD})
        async with live_client(tmp_path, url, clock, iam_token="expired-token-0123456789") as client:
            bad = await client.call_tool("taurusdb_list_proxies", {"instance_id": INSTANCE_PROD})
    assert not good.is_error and good.structured_content is not None
    assert len(good.structured_content["rows"]) == 2
    assert bad.is_error and bad.structured_content is not None
    assert bad.structured_content["code"] == "auth_failed"
    assert "POOLPILOT_TAURUSDB_IAM_TOKEN" in bad.structured_content["hint"]
    assert "expired-token-0123456789" not in _visible(bad)


async def test_live_without_credentials_says_what_to_set_and_sends_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep)
    with served(sandbox) as url:
        settings = Settings(
            backend="live",
            providers={"taurusdb": TaurusDBSettings(url=url)},
            toolsets=("taurusdb",),
            audit_log=str(tmp_path / "audit.jsonl"),
        )
        async with Client(build_app(settings, clock=clock), raise_exceptions=True) as client:
            result = await client.call_tool("taurusdb_list_instances", {})
    assert result.is_error and result.structured_content is not None
    assert "HUAWEICLOUD_SDK_AK" in result.structured_content["hint"]
    assert sandbox.requests == 0


async def test_unreachable_url_is_a_connection_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound but not listening: connections are refused
        async with live_client(tmp_path, url, ManualClock(), connect_timeout_s=1.0) as client:
            with anyio.fail_after(20):
                result = await client.call_tool("taurusdb_list_instances", {})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == "connection_error"
    assert f"Check that {url} is reachable (POOLPILOT_TAURUSDB_URL" in result.structured_content["hint"]
