"""Injected faults through the MCP client: what is retried, what is reconciled, and what the model is told.

Every sandbox here runs on a manual clock: latency, timeouts, Retry-After and backoff cost no real time, and
`clock.slept` shows what poolpilot waited for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.server.kernel.http import RetryPolicy
from poolpilot.server.kernel.sandbox import Fault
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.reliability.harness import error_model, rig, sandbox_with

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy()
CLUSTER = f"/v2/databases/{PG_MAIN_ID}"
SMALL = f"/v2/databases/{PG_SMALL_ID}"
NEW_POOL = {"cluster_id": PG_SMALL_ID, "pool_name": "jobs", "mode": "session", "size": 5, "db": "defaultdb"}
SWITCH = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION", "wait": False}
PUT_SWITCH = f"/proxy/{PROXY_SWITCHABLE}/connection-pool-type"


# -- reads: retried on 429, 5xx, dropped connections; bounded in attempts and time --------------------


async def test_read_answered_429_waits_retry_after_then_succeeds(tmp_path: Path) -> None:
    fault = Fault("status", status=429, retry_after=7, target="databases_get_cluster", times=2)
    async with rig(tmp_path, sandbox_with(fault)) as r:
        cluster = await r.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert cluster["name"] == "pg-main"
        assert r.sandbox.sent("GET", CLUSTER) == 3
        assert r.clock.slept == [7.0, 7.0]  # Retry-After, not the (shorter) backoff


async def test_read_answered_429_persistently_is_rate_limited_with_retry_after(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("429@databases_get_cluster")) as r:
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert (err["code"], err["http_status"], err["retry_after_s"]) == ("rate_limited", 429, 1.0)
        assert err["provider"] == "digitalocean" and err["hint"].startswith("Wait 1 s")
        assert r.sandbox.sent("GET", CLUSTER) == POLICY.attempts


async def test_retry_after_longer_than_the_time_budget_is_reported_not_slept(tmp_path: Path) -> None:
    fault = Fault("status", status=429, retry_after=30, target="databases_get_cluster")
    async with rig(tmp_path, sandbox_with(fault)) as r:
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert (err["code"], err["retry_after_s"]) == ("rate_limited", 30.0)
        assert r.clock.slept == [30.0]  # a second 30 s wait would end past the 45 s bound: report instead
        assert sum(r.clock.slept) <= POLICY.total_s


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_read_answered_5xx_is_retried_and_succeeds(tmp_path: Path, status: int) -> None:
    async with rig(tmp_path, sandbox_with(f"{status}@databases_list_connectionPools#2")) as r:
        listed = await r.ok("digitalocean_list_pools", cluster_id=PG_MAIN_ID)
        assert listed["total"] == 4
        assert r.sandbox.sent("GET", f"{CLUSTER}/pools") == 3
        assert len(r.clock.slept) == 2 and all(0 < s <= POLICY.cap_s for s in r.clock.slept)


@pytest.mark.parametrize(
    ("tool", "fault", "args"),
    [
        ("digitalocean_get_cluster", "503@databases_get_cluster#1", {"cluster_id": PG_MAIN_ID}),
        ("taurusdb_list_instances", "503@list_instances#1", {}),
    ],
)
async def test_backoff_jitter_comes_from_the_app_seam(
    tmp_path: Path, tool: str, fault: str, args: dict[str, str]
) -> None:
    draws: list[float] = []

    def jitter() -> float:
        draws.append(0.0)
        return 0.0

    async with rig(tmp_path, sandbox_with(fault), jitter=jitter) as r:
        await r.ok(tool, **args)
        assert draws == [0.0] and r.clock.slept == [POLICY.base_s / 2]  # the shortest first backoff


async def test_read_answered_5xx_persistently_is_an_upstream_error(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("503@databases_get_cluster")) as r:
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert (err["code"], err["http_status"], err["provider_code"]) == ("upstream_error", 503, "service_unavailable")
        assert r.sandbox.sent("GET", CLUSTER) == POLICY.attempts


async def test_read_over_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("drop@databases_get_cluster#1")) as r:
        assert (await r.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID))["name"] == "pg-main"
        assert r.sandbox.sent("GET", CLUSTER) == 2


async def test_read_over_a_connection_that_keeps_dropping_is_a_connection_error(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("drop@databases_get_cluster")) as r:
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert err["code"] == "connection_error" and "RemoteProtocolError" in err["message"]
        assert err["provider"] == "digitalocean" and err["hint"]
        assert r.sandbox.sent("GET", CLUSTER) == POLICY.attempts


@pytest.mark.parametrize(
    ("tool", "fault", "args"),
    [
        ("digitalocean_get_cluster", "drop@databases_get_cluster", {"cluster_id": PG_MAIN_ID}),
        ("taurusdb_list_instances", "drop@list_instances", {}),
    ],
)
async def test_unreachable_hint_names_the_embedded_sandbox_not_a_live_url(
    tmp_path: Path, tool: str, fault: str, args: dict[str, str]
) -> None:
    async with rig(tmp_path, sandbox_with(fault)) as r:
        err = await r.error(tool, **args)
        assert err["code"] == "connection_error" and "the embedded sandbox" in err["hint"], err
        assert "http" not in err["hint"] and "POOLPILOT_" not in err["hint"]


async def test_read_that_times_out_is_a_timeout_within_the_time_bound(tmp_path: Path) -> None:
    # The sandbox answers nothing for 30 s (the default read timeout): the retry starts inside the 45 s bound,
    # a third attempt would not, so the call ends with `timeout` after two.
    async with rig(tmp_path, sandbox_with("timeout@databases_get_cluster", timeout_s=30)) as r:
        started = r.clock.now
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert err["code"] == "timeout" and err["message"] == "GET to digitalocean did not finish within 45s"
        assert r.sandbox.sent("GET", CLUSTER) == 2
        assert r.clock.now - started < POLICY.total_s + 30  # one attempt may start just before the bound


async def test_read_that_never_answers_ends_after_one_attempt(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("timeout@databases_get_cluster")) as r:  # an hour of silence
        err = await r.error("digitalocean_get_cluster", cluster_id=PG_MAIN_ID)
        assert err["code"] == "timeout"
        assert r.sandbox.sent("GET", CLUSTER) == 1


async def test_added_latency_only_delays_a_read(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("latency:1500ms@databases_get_cluster")) as r:
        assert (await r.ok("digitalocean_get_cluster", cluster_id=PG_MAIN_ID))["name"] == "pg-main"
        assert r.clock.slept == [1.5]


# -- creates: never resent blindly; reconciled by reading back -------------------------------------


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "drop"])
async def test_create_pool_that_failed_without_applying_is_reported_not_created(tmp_path: Path, fault: str) -> None:
    async with rig(tmp_path, sandbox_with(f"{fault}@databases_add_connectionPool#1", timeout_s=30)) as r:
        err = await r.error("digitalocean_create_pool", **NEW_POOL)
        assert 'reading back shows no pool "jobs": nothing was created' in err["message"]
        assert err["hint"] == "It is safe to call the tool again."
        assert r.sandbox.sent("POST", f"{SMALL}/pools") == 1 and r.pool(PG_SMALL_ID, "jobs") is None
        created = await r.ok("digitalocean_create_pool", **NEW_POOL)  # as the hint says: safe to call again
        assert created["note"] is None and r.pool(PG_SMALL_ID, "jobs") == ("session", 5, "defaultdb", "")
        assert r.sandbox.sent("POST", f"{SMALL}/pools") == 2


async def test_create_pool_that_applied_but_answered_500_is_reported_created_once(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("applied-500@databases_add_connectionPool#1")) as r:
        created = await r.ok("digitalocean_create_pool", **NEW_POOL)
        assert created["pool"]["size"] == 5 and 'reading back shows pool "jobs" was created' in created["note"]
        assert r.sandbox.sent("POST", f"{SMALL}/pools") == 1  # never resent
        again = await r.error("digitalocean_create_pool", **NEW_POOL)
        assert again["code"] == "conflict" and "nothing was sent" in again["message"]
        assert r.sandbox.sent("POST", f"{SMALL}/pools") == 1
        assert r.pool(PG_SMALL_ID, "jobs") == ("session", 5, "defaultdb", "")


async def test_create_pool_answered_429_is_resent_because_it_was_refused(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("429@databases_add_connectionPool#1")) as r:
        created = await r.ok("digitalocean_create_pool", **NEW_POOL)
        assert created["note"] is None and r.clock.slept == [1.0]
        assert r.sandbox.sent("POST", f"{SMALL}/pools") == 2


async def test_create_database_that_applied_but_answered_500_is_reported_created(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("applied-500@databases_add#1")) as r:
        created = await r.ok("digitalocean_create_database", cluster_id=PG_SMALL_ID, database_name="late")
        assert 'reading back shows database "late" was created' in created["note"]
        assert r.sandbox.sent("POST", f"{SMALL}/dbs") == 1
        assert r.sandbox.digitalocean.clusters[PG_SMALL_ID].dbs.count("late") == 1


# -- idempotent writes: PUT and DELETE are retried; a DELETE that finds the object gone is done ------


@pytest.mark.parametrize("fault", ["500", "applied-500", "drop"])
async def test_update_pool_retried_after_a_failure_ends_in_the_asked_state(tmp_path: Path, fault: str) -> None:
    async with rig(tmp_path, sandbox_with(f"{fault}@databases_update_connectionPool#1")) as r:
        args = {"cluster_id": PG_SMALL_ID, "pool_name": "web", "size": 12}
        token = await r.preview("digitalocean_update_pool", **args)
        done = await r.ok("digitalocean_update_pool", **args, confirm_token=token)
        assert done["executed"] is True and done["after"]["size"] == 12 and done["after"]["user"] == "doadmin"
        assert r.sandbox.sent("PUT", f"{SMALL}/pools/web") == 2
        assert r.pool(PG_SMALL_ID, "web") == ("transaction", 12, "defaultdb", "doadmin")


async def test_delete_pool_whose_retry_finds_it_gone_is_reported_done(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("applied-500@databases_delete_connectionPool#1")) as r:
        args = {"cluster_id": PG_SMALL_ID, "pool_name": "web"}
        token = await r.preview("digitalocean_delete_pool", **args)
        done = await r.ok("digitalocean_delete_pool", **args, confirm_token=token)
        assert done["executed"] is True and 'the retry found pool "web" gone' in done["message"]
        assert done["deleted"]["name"] == "web"
        assert r.sandbox.sent("DELETE", f"{SMALL}/pools/web") == 2 and r.pool(PG_SMALL_ID, "web") is None


async def test_delete_pool_over_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("drop@databases_delete_connectionPool#1")) as r:
        args = {"cluster_id": PG_SMALL_ID, "pool_name": "web"}
        token = await r.preview("digitalocean_delete_pool", **args)
        done = await r.ok("digitalocean_delete_pool", **args, confirm_token=token)
        assert done["executed"] is True and done["message"] == 'Pool "web" deleted.'
        assert r.sandbox.sent("DELETE", f"{SMALL}/pools/web") == 2 and r.pool(PG_SMALL_ID, "web") is None


async def test_delete_database_whose_retry_finds_it_gone_is_reported_done(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("applied-500@databases_delete#1")) as r:
        args = {"cluster_id": PG_MAIN_ID, "database_name": "defaultdb"}
        token = await r.preview("digitalocean_delete_database", **args)
        done = await r.ok("digitalocean_delete_database", **args, confirm_token=token)
        assert done["executed"] is True and done["deleted"] is True and "gone" in done["message"]
        assert "defaultdb" not in r.sandbox.digitalocean.clusters[PG_MAIN_ID].dbs


# -- TaurusDB: the pool-type PUT starts a job each time, so it is sent once and reconciled -----------


@pytest.mark.parametrize(
    ("fault", "code"), [("500", "upstream_error"), ("timeout", "timeout"), ("drop", "connection_error")]
)
async def test_taurusdb_switch_that_failed_is_not_resent_and_says_nothing_changed(
    tmp_path: Path, fault: str, code: str
) -> None:
    async with rig(tmp_path, sandbox_with(f"{fault}@set_pool_type#1", timeout_s=30)) as r:
        err = error_model(await r.confirmed("taurusdb_set_proxy_pool_type", **SWITCH))
        assert err["code"] == code and err["provider"] == "taurusdb"
        assert "the proxy still shows CLOSED" in err["message"] and "It was not resent" in err["message"]
        assert "taurusdb_list_proxies" in err["hint"]
        assert r.sandbox.sent("PUT", PUT_SWITCH) == 1
        assert r.sandbox.taurusdb.jobs == {}
        r.clock.advance(60)
        assert r.pool_type(PROXY_SWITCHABLE) == "CLOSED"


async def test_taurusdb_switch_applied_but_answered_500_is_not_resent_and_settles(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("applied-500@set_pool_type#1")) as r:
        err = error_model(await r.confirmed("taurusdb_set_proxy_pool_type", **SWITCH))
        assert err["code"] == "upstream_error" and err["http_status"] == 500
        assert "a job may or may not have started" in err["message"]
        assert r.sandbox.sent("PUT", PUT_SWITCH) == 1 and len(r.sandbox.taurusdb.jobs) == 1
        # While that job runs, another switch is refused as a conflict, not stacked on top of it.
        busy = error_model(await r.confirmed("taurusdb_set_proxy_pool_type", **SWITCH))
        assert busy["code"] == "conflict" and len(r.sandbox.taurusdb.jobs) == 1
        r.clock.advance(60)
        listed = await r.ok("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        assert {row["proxy_id"]: row["pool_type"] for row in listed["rows"]}[PROXY_SWITCHABLE] == "SESSION"
        again = await r.ok("taurusdb_set_proxy_pool_type", **SWITCH)  # the model checks back, as the hint says
        assert again["outcome"] == "no_change" and again["executed"] is False
        assert r.sandbox.sent("PUT", PUT_SWITCH) == 2


async def test_taurusdb_switch_that_failed_but_shows_the_type_is_reported_executed(tmp_path: Path) -> None:
    # Applied, answered 500, and the job is already done when the proxy is read back (a zero-length job).
    sandbox = sandbox_with("applied-500@set_pool_type#1", job_seconds=(0.0, 0.0))
    async with rig(tmp_path, sandbox) as r:
        token = await r.preview("taurusdb_set_proxy_pool_type", **SWITCH)
        done = await r.ok("taurusdb_set_proxy_pool_type", **SWITCH, confirm_token=token)
        assert done["executed"] is True and done["pool_type_now"] == "SESSION"
        assert "failed (HTTP 500), yet the proxy now shows SESSION" in done["message"]
        assert r.sandbox.sent("PUT", PUT_SWITCH) == 1


async def test_taurusdb_read_answered_5xx_is_retried(tmp_path: Path) -> None:
    async with rig(tmp_path, sandbox_with("503@list_proxies#2")) as r:
        listed = await r.ok("taurusdb_list_proxies", instance_id=INSTANCE_PROD)
        assert len(listed["rows"]) == 2
        assert r.sandbox.sent("GET", f"/instances/{INSTANCE_PROD}/proxies") == 3


# -- pacing: a low rate-limit budget slows calls down instead of failing them ----------------------


async def test_low_rate_limit_budget_paces_calls_through_the_window_reset(tmp_path: Path) -> None:
    # 100 requests an hour, under 5 % of them left = pace. Unpaced, the 101st request, 8 s before the window ends,
    # would meet 429 (the hourly one has no Retry-After) and three short backoffs would not outlast those 8 s.
    async with rig(tmp_path, sandbox_with(do_rate_limit_per_hour=100, do_rate_limit_per_minute=1000)) as r:
        for _ in range(97):
            await r.ok("digitalocean_list_clusters")
        assert r.clock.slept == [POLICY.max_pace_s]  # the 97th call: 4 requests left for the hour
        r.clock.advance(3590)
        r.clock.slept.clear()
        for _ in range(6):
            assert (await r.ok("digitalocean_list_clusters"))["total"] == 4
        # Four paced calls carry the budget over the window's end; then the budget is full and nobody waits.
        assert r.clock.slept == [POLICY.max_pace_s] * 4
        assert r.sandbox.sent("GET", "/v2/databases") == 103  # not one 429 met, so not one retry
