"""Every sandbox response the DigitalOcean tools meet validates against the OpenAPI subset.

The sandbox transport is wrapped in an httpx2 transport that checks each response (status, body schema,
headers) against the operation it answers, so the tools are proven against the documented shapes and not
only against the fake's own idea of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.server.kernel.redact import Redactor
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.kernel.state import OpenContext
from poolpilot.tools.digitalocean.client import DigitalOceanClient, open_client
from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import session
from tests.digitalocean.openapi_contract import assert_matches_operation, find_operation
from tests.support import ManualClock, Sandbox

pytestmark = pytest.mark.anyio


class ContractTransport(httpx2.AsyncBaseTransport):
    """Passes requests through and checks every response against the subset; records what it checked."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.checked: list[tuple[str, int]] = []
        self.failures: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        path = request.url.raw_path.decode("ascii")
        try:
            body = json.loads(content) if content else None
            op_id, _ = find_operation(request.method, path)
            assert_matches_operation(request.method, op_id, response.status_code, body, headers=response.headers)
            self.checked.append((op_id, response.status_code))
        except Exception as exc:  # recorded, so one test reports every mismatch at once
            self.failures.append(f"{request.method} {path} -> {response.status_code}: {exc}")
        return httpx2.Response(response.status_code, headers=response.headers, content=content, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ContractSandbox(Sandbox):
    """The real sandbox; only its transport is wrapped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contract = ContractTransport(InProcessTransport(self))

    def transport(self) -> httpx2.AsyncBaseTransport:
        return self.contract


def _contract_sandbox(*faults: str, **kwargs: Any) -> ContractSandbox:
    clock = ManualClock()
    plan = FaultPlan()
    for rule in faults:
        plan.add(rule)
    return ContractSandbox(clock=clock, sleep=clock.sleep, faults=plan, **kwargs)


async def test_tool_traffic_matches_the_openapi_subset(tmp_path: Path) -> None:
    sandbox = _contract_sandbox("429@databases_list_users#1", "applied-500@databases_add#1")
    async with session(tmp_path, sandbox=sandbox, confirm="off") as s:
        await s.ok("digitalocean_list_clusters")
        await s.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        await s.ok("digitalocean_get_cluster", cluster_id=MYSQL_APP_ID)
        new = {"cluster_id": PG_MAIN_ID, "pool_name": "c-pool", "mode": "session", "size": 3, "db": "app"}
        await s.ok("digitalocean_create_pool", **new, user="app")
        await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="c-pool")
        await s.ok("digitalocean_update_pool", cluster_id=PG_MAIN_ID, pool_name="c-pool", inbound_user=True)
        await s.ok("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="c-pool")  # inbound-user shape
        await s.ok("digitalocean_delete_pool", cluster_id=PG_MAIN_ID, pool_name="c-pool")
        await s.ok("digitalocean_create_database", cluster_id=PG_SMALL_ID, database_name="c-db")  # 500, read back
        await s.ok("digitalocean_list_databases", cluster_id=PG_SMALL_ID)
        await s.ok("digitalocean_get_database", cluster_id=PG_SMALL_ID, database_name="c-db")
        await s.ok("digitalocean_delete_database", cluster_id=PG_SMALL_ID, database_name="c-db")
        await s.ok("digitalocean_list_users", cluster_id=MYSQL_APP_ID)  # 429 first, then 200
        await s.error("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="ghost")  # 404
        await s.error("digitalocean_get_pool", cluster_id=MYSQL_APP_ID, pool_name="ghost")  # 422 from the fake
    contract = sandbox.contract
    assert contract.failures == []
    seen = {op for op, _ in contract.checked}
    assert seen == {
        "databases_list_clusters",
        "databases_get_cluster",
        "databases_list",
        "databases_add",
        "databases_get",
        "databases_delete",
        "databases_list_connectionPools",
        "databases_add_connectionPool",
        "databases_get_connectionPool",
        "databases_update_connectionPool",
        "databases_delete_connectionPool",
        "databases_list_users",
    }
    statuses = {status for _, status in contract.checked}
    assert {200, 201, 204, 404, 422, 429, 500} <= statuses


async def _client_for(sandbox: Sandbox) -> DigitalOceanClient:
    clock = ManualClock()
    ctx = OpenContext(
        settings=Settings(backend="sandbox"), redactor=Redactor(), sandbox=sandbox, clock=clock, sleep=clock.sleep
    )
    return await open_client(ctx)


async def test_client_only_endpoints_and_auth_errors_match_the_subset() -> None:
    locked = _contract_sandbox(do_require_token="not-the-sandbox-token")
    do = await _client_for(locked)
    with pytest.raises(PoolpilotError):
        await do.get_user(PG_MAIN_ID, "app")  # 401
    await do.aclose()
    sandbox = _contract_sandbox()
    do = await _client_for(sandbox)
    assert (await do.get_user(PG_MAIN_ID, "app")).name == "app"
    with pytest.raises(PoolpilotError):
        await do.add_pool(PG_SMALL_ID, name="web", mode="session", size=1, db="defaultdb", user=None)  # 422
    await do.aclose()
    assert locked.contract.failures == [] and sandbox.contract.failures == []
    assert locked.contract.checked == [("databases_get_user", 401)]
    assert set(sandbox.contract.checked) >= {("databases_get_user", 200), ("databases_add_connectionPool", 422)}
