"""How DigitalOcean failures reach the model: 401, 404, 429, 5xx, and creates/deletes whose answer was lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import session
from tests.support import ManualClock, Sandbox

pytestmark = pytest.mark.anyio

CREATE = "digitalocean_create_pool"
NEW = {"cluster_id": PG_SMALL_ID, "pool_name": "jobs", "mode": "session", "size": 5, "db": "defaultdb"}


def _sandbox(*faults: str, **kwargs: object) -> Sandbox:
    clock = ManualClock()
    plan = FaultPlan()
    for rule in faults:
        plan.add(rule)
    return Sandbox(clock=clock, sleep=clock.sleep, faults=plan, **kwargs)  # type: ignore[arg-type]


async def test_401_tells_the_operator_which_variable_to_set(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox(do_require_token="the-only-token")) as s:
        err = await s.error("digitalocean_list_clusters")
        assert err["code"] == "auth_failed" and err["http_status"] == 401
        assert err["provider"] == "digitalocean" and err["provider_code"] == "unauthorized"
        assert "DIGITALOCEAN_TOKEN" in err["hint"] and "DIGITALOCEAN_ACCESS_TOKEN" in err["hint"]
        assert "poolpilot doctor" in err["hint"] and err["request_id"]
        assert s.sandbox.requests == 1  # a 401 is never retried


async def test_404_names_the_missing_pool_or_cluster(tmp_path: Path) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    async with session(tmp_path) as s:
        err = await s.error("digitalocean_get_pool", cluster_id=PG_MAIN_ID, pool_name="ghost")
        assert err["code"] == "not_found" and err["provider_code"] == "not_found"
        assert err["message"] == f'pool "ghost" on cluster {PG_MAIN_ID} was not found'
        assert f"digitalocean_list_pools(cluster_id='{PG_MAIN_ID}')" in err["hint"]
        err = await s.error("digitalocean_get_pool", cluster_id=unknown, pool_name="ghost")
        assert err["message"] == f"cluster {unknown} was not found"
        err = await s.error("digitalocean_get_cluster", cluster_id=unknown)
        assert err["message"] == f"cluster {unknown} was not found" and "read replicas" in err["hint"]
        err = await s.error("digitalocean_update_pool", cluster_id=PG_MAIN_ID, pool_name="ghost", size=3)
        assert err["code"] == "not_found" and '"ghost"' in err["message"] and "pg-main" in err["message"]
        err = await s.error("digitalocean_list_pools", cluster_id=unknown)
        assert err["message"] == f"cluster {unknown} was not found"
        assert s.mutations() == []


async def test_429_carries_retry_after_once_retries_are_used_up(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox("429@databases_list_connectionPools#5")) as s:
        err = await s.error("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert err["code"] == "rate_limited" and err["http_status"] == 429
        assert err["retry_after_s"] == 1.0 and err["provider_code"] == "too_many_requests"
        assert err["hint"].startswith("Wait 1 s")
        assert max(s.clock.slept) >= 1.0  # each retry waited at least Retry-After
        listed = await s.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)  # the fifth 429 was retried away
        assert listed["total"] == 4


async def test_5xx_on_a_read_is_retried(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox("503@databases_get_cluster#2")) as s:
        assert (await s.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID))["name"] == "pg-main"


async def test_create_answered_500_that_did_create_reports_created(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox("applied-500@databases_add_connectionPool#1")) as s:
        created = await s.ok(CREATE, **NEW)
        assert created["outcome"] == "executed" and created["pool"]["size"] == 5
        assert created["note"] == 'DigitalOcean answered HTTP 500, but reading back shows pool "jobs" was created.'
        assert s.mutations().count(("POST", "databases_add_connectionPool")) == 1  # never resent


@pytest.mark.parametrize("fault", ["500", "timeout", "drop"])
async def test_create_that_failed_uncertainly_and_did_not_create_says_so(tmp_path: Path, fault: str) -> None:
    async with session(tmp_path, sandbox=_sandbox(f"{fault}@databases_add_connectionPool#1")) as s:
        err = await s.error(CREATE, **NEW)
        assert 'reading back shows no pool "jobs": nothing was created' in err["message"]
        assert err["hint"] == "It is safe to call the tool again."
        assert s.pool(PG_SMALL_ID, "jobs") is None
        assert (await s.ok(CREATE, **NEW))["note"] is None


async def test_create_whose_outcome_is_unknown_is_settled_by_the_next_call(tmp_path: Path) -> None:
    faults = ("applied-500@databases_add_connectionPool#1", "500@databases_get_connectionPool#4")
    async with session(tmp_path, sandbox=_sandbox(*faults)) as s:
        err = await s.error(CREATE, **NEW)
        assert 'whether pool "jobs" was created is unknown' in err["message"]
        assert "Read it with a get tool" in err["hint"]
        again = await s.ok(CREATE, **NEW)  # the pool is there, as asked: the earlier create did it
        assert again["note"] == "an earlier create reported a failure, but it did create this pool"
        assert s.mutations().count(("POST", "databases_add_connectionPool")) == 1


async def test_delete_retried_after_it_succeeded_is_reported_done(tmp_path: Path) -> None:
    sandbox = _sandbox("applied-500@databases_delete_connectionPool#1")
    async with session(tmp_path, sandbox=sandbox, confirm="off") as s:
        done = await s.ok("digitalocean_delete_pool", cluster_id=PG_SMALL_ID, pool_name="web")
        assert done["executed"] is True and 'the retry found pool "web" gone' in done["message"]
        assert s.mutations().count(("DELETE", "databases_delete_connectionPool")) == 2


async def test_database_create_answered_500_that_did_create_reports_created(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox("applied-500@databases_add#1")) as s:
        created = await s.ok("digitalocean_create_database", cluster_id=PG_SMALL_ID, database_name="late")
        assert created["note"] == 'DigitalOcean answered HTTP 500, but reading back shows database "late" was created.'


async def test_update_that_failed_on_the_server_is_an_upstream_error(tmp_path: Path) -> None:
    async with session(tmp_path, sandbox=_sandbox("500@databases_update_connectionPool"), confirm="off") as s:
        err = await s.error("digitalocean_update_pool", cluster_id=PG_SMALL_ID, pool_name="web", size=11)
        assert err["code"] == "upstream_error" and err["http_status"] == 500
        assert "read the resource back" in err["hint"]
        assert s.sandbox.faults.fired == 4  # PUT replaces the pool: idempotent, so retried
