"""A sentinel password seeded into the sandbox never reaches a result, an error, a log line or the audit log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from mcp_types import CallToolResult

from poolpilot.server.shell.registry import faces
from tests.support import ManualClock, Sandbox, make_app, open_client, sandbox_toolsets

pytestmark = pytest.mark.anyio

SENTINEL = "sentinel-Zq8Kx3Vw"
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
PG_MAIN = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"
INSTANCE = "af315b8e6aaa41799bd9a31f2de15abcin07"
PROXY = "5881e1ca66af4aefbc64dc2874e55b3fpo01"
PROXY_RO = "3b9d2e7f0c1a4b5d9e8f7a6b5c4d3e2fpo01"

# Every DigitalOcean and TaurusDB tool, guarded ones twice (preview, then with the token).
SCENARIO: list[tuple[str, dict[str, Any]]] = [
    ("digitalocean_list_clusters", {}),
    ("digitalocean_get_cluster", {"cluster_id": PG_MAIN}),
    ("digitalocean_list_pools", {"cluster_id": PG_MAIN}),
    ("digitalocean_get_pool", {"cluster_id": PG_MAIN, "pool_name": "app-tx"}),
    ("digitalocean_list_users", {"cluster_id": PG_MAIN}),
    ("digitalocean_list_databases", {"cluster_id": PG_MAIN}),
    ("digitalocean_get_database", {"cluster_id": PG_MAIN, "database_name": "app"}),
    ("digitalocean_create_database", {"cluster_id": PG_SMALL, "database_name": "extra"}),
    (
        "digitalocean_create_pool",
        {
            "cluster_id": PG_SMALL,
            "pool_name": "extra-pool",
            "mode": "session",
            "size": 3,
            "db": "extra",
            "user": "doadmin",
        },
    ),
    ("digitalocean_update_pool", {"cluster_id": PG_SMALL, "pool_name": "extra-pool", "size": 4}),
    ("digitalocean_delete_pool", {"cluster_id": PG_SMALL, "pool_name": "extra-pool"}),
    ("digitalocean_delete_database", {"cluster_id": PG_SMALL, "database_name": "extra"}),
    ("digitalocean_get_pool", {"cluster_id": PG_MAIN, "pool_name": "no-such-pool"}),
    ("digitalocean_get_user", {"cluster_id": PG_MAIN, "user_name": "app"}),
    ("digitalocean_create_user", {"cluster_id": PG_SMALL, "user_name": "extra_user"}),
    ("digitalocean_delete_user", {"cluster_id": PG_SMALL, "user_name": "extra_user"}),
    ("digitalocean_get_cluster_config", {"cluster_id": PG_MAIN}),
    ("digitalocean_update_cluster_config", {"cluster_id": PG_MAIN, "min_pool_size": 2}),
    ("digitalocean_list_cluster_options", {}),
    ("digitalocean_resize_cluster", {"cluster_id": PG_SMALL, "size": "db-s-1vcpu-2gb"}),
    ("taurusdb_list_instances", {}),
    ("taurusdb_list_proxies", {"instance_id": INSTANCE}),
    ("taurusdb_get_proxy_version", {"instance_id": INSTANCE, "proxy_id": PROXY_RO}),
    ("taurusdb_upgrade_proxy_version", {"instance_id": INSTANCE, "proxy_id": PROXY_RO}),
    ("taurusdb_get_proxy_parameters", {"instance_id": INSTANCE, "proxy_id": PROXY}),
    (
        "taurusdb_set_proxy_parameters",
        {"instance_id": INSTANCE, "proxy_id": PROXY, "parameters": {"max_connections": "900"}},
    ),
    (
        "taurusdb_set_proxy_session_consistency",
        {"instance_id": INSTANCE, "proxy_id": PROXY, "consistence_mode": "global"},
    ),
    (
        "taurusdb_set_proxy_pool_type",
        {"instance_id": INSTANCE, "proxy_id": PROXY, "pool_type": "SESSION", "wait": True},
    ),
]


def _text(result: CallToolResult) -> str:
    parts = [getattr(c, "text", "") for c in result.content]
    return "\n".join(parts) + json.dumps(result.structured_content)


async def _run(tmp_path: Path, **overrides: Any) -> tuple[list[str], str, list[dict[str, Any]]]:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, password=SENTINEL, job_seconds=(1.0, 2.0))
    audit = tmp_path / "audit.jsonl"
    overrides.setdefault("toolsets", sandbox_toolsets())
    app, sandbox, _ = make_app(audit, sandbox=sandbox, clock=clock, **overrides)
    seen: list[str] = []
    async with open_client(app) as client:
        for tool, args in SCENARIO:
            result = await client.call_tool(tool, args)
            seen.append(_text(result))
            data = result.structured_content or {}
            if data.get("confirmation_required"):
                result = await client.call_tool(tool, {**args, "confirm_token": data["confirm_token"]})
                assert not result.is_error, result.content
                seen.append(_text(result))
        job = (result.structured_content or {}).get("job") or {}
        assert job.get("job_id"), result.structured_content
        seen.append(_text(await client.call_tool("taurusdb_get_job", {"job_id": job["job_id"]})))
    return seen, audit.read_text(), [json.loads(x) for x in audit.read_text().splitlines()]


def test_scenario_covers_every_sandbox_tool() -> None:
    names = {s.name for f in faces() if f.name in ("digitalocean", "taurusdb") for s in f.tools()}
    assert names == {tool for tool, _ in SCENARIO} | {"taurusdb_get_job"}


async def test_sentinel_password_never_reaches_results_logs_or_audit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    results, audit_text, audit_lines = await _run(tmp_path)
    assert any("postgresql://" in r for r in results)  # connection details were returned, redacted
    assert all(SENTINEL not in r for r in results)
    assert SENTINEL not in audit_text
    assert SENTINEL not in caplog.text
    assert len(audit_lines) >= 8


async def test_allow_secrets_lets_passwords_into_results_but_never_the_audit_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    results, audit_text, _ = await _run(tmp_path, allow_secrets=True)
    assert any(SENTINEL in r for r in results)
    assert SENTINEL not in audit_text
    assert SENTINEL not in caplog.text
