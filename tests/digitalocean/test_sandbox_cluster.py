"""The sandbox's cluster-level routes (users, config, resize, options) against the OpenAPI subset and DigitalOcean's
documented behaviour: statuses, bodies, error ids, the resize on the injected clock."""

from __future__ import annotations

import json

import pytest

from poolpilot.tools.digitalocean.sandbox import DigitalOceanSandbox
from poolpilot.tools.digitalocean.sandbox_seed import MYSQL_APP_ID, PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.openapi_contract import find_operation
from tests.digitalocean.test_sandbox_contract import UNKNOWN, Clock, as_dict, call, checked, segments

pytestmark = pytest.mark.anyio

MAIN = f"/v2/databases/{PG_MAIN_ID}"
SMALL = f"/v2/databases/{PG_SMALL_ID}"
OPS: list[tuple[str, str, dict[str, object] | None, int]] = [
    ("GET", "/v2/databases/options", None, 200),
    ("POST", "/v2/databases/{c}/users", {"name": "app-01"}, 201),
    ("DELETE", "/v2/databases/{c}/users/reporter", None, 204),
    ("GET", "/v2/databases/{c}/config", None, 200),
    ("PATCH", "/v2/databases/{c}/config", {"config": {"pgbouncer": {"min_pool_size": 2}}}, 200),
    ("PUT", "/v2/databases/{c}/resize", {"size": "db-s-4vcpu-8gb", "num_nodes": 2}, 202),
]
OP_IDS = [f"{method} {path}" for method, path, _, _ in OPS]


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS, ids=OP_IDS)
async def test_cluster_operation_success_matches_contract(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    sandbox = DigitalOceanSandbox()
    url = path.format(c=PG_MAIN_ID)
    response = await call(sandbox, method, url, body)
    assert response.status_code == status
    parsed = checked(method, url, response)
    if parsed is None:  # 204, 202 and the PATCH's 200 carry no body, and so no content type
        assert response.content == b"" and "content-type" not in response.headers
    else:
        assert response.headers["content-length"] == str(len(response.content))
    assert sandbox.endpoint(method, segments(url)) == find_operation(method, url)[0]


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS[1:], ids=OP_IDS[1:])
async def test_cluster_operation_on_unknown_cluster_or_without_token_fails_documented(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    url = path.format(c=UNKNOWN)
    response = await call(DigitalOceanSandbox(), method, url, body)
    assert response.status_code == 404 and as_dict(checked(method, url, response))["id"] == "not_found"
    response = await call(DigitalOceanSandbox(), method, path.format(c=PG_MAIN_ID), body, token=None)
    assert response.status_code == 401 and as_dict(checked(method, url, response))["id"] == "unauthorized"


async def test_add_user_generates_a_password_and_a_taken_name_is_unprocessable() -> None:
    sandbox = DigitalOceanSandbox()
    body = {"name": "svc", "settings": {"pg_allow_replication": True}}
    user = as_dict(
        as_dict(checked("POST", f"{MAIN}/users", await call(sandbox, "POST", f"{MAIN}/users", body)))["user"]
    )
    assert user["password"] == sandbox.clusters[PG_MAIN_ID].users["svc"].password and len(str(user["password"])) == 16
    assert user["settings"] == {"pg_allow_replication": True}
    got = await call(sandbox, "GET", f"{MAIN}/users/svc")
    assert as_dict(checked("GET", f"{MAIN}/users/svc", got))["user"] == user
    for bad in ({"name": "svc"}, {"name": ""}, {}):
        response = await call(sandbox, "POST", f"{MAIN}/users", bad)
        assert response.status_code == 422 and as_dict(response.json())["id"] == "unprocessable_entity"


async def test_delete_user_leaves_its_pools_orphaned_and_then_is_not_found() -> None:
    sandbox = DigitalOceanSandbox()
    assert (await call(sandbox, "DELETE", f"{MAIN}/users/app")).status_code == 204
    assert sandbox.clusters[PG_MAIN_ID].pools["app-tx"].user == "app"
    assert (await call(sandbox, "DELETE", f"{MAIN}/users/app")).status_code == 404
    assert (await call(sandbox, "GET", f"{MAIN}/users/app")).status_code == 404
    assert (await call(sandbox, "DELETE", f"{MAIN}/users/doadmin")).status_code == 422


@pytest.mark.parametrize(
    "config",
    [
        {"pgbouncer": {"server_lifetime": 59}},
        {"pgbouncer": {"min_pool_size": True}},
        {"pgbouncer": {"autodb_pool_mode": "auto"}},
        {"pgbouncer": {"ignore_startup_parameters": ["application_name"]}},
        {"pgbouncer": {"unknown": 1}},
        {"max_connections": 24},
        {"max_connections": 99},  # below the current 100: DigitalOcean never lowers it
        {"shared_buffers_percentage": 20},
        {},
    ],
)
async def test_patch_config_invalid_value_is_unprocessable(config: dict[str, object]) -> None:
    sandbox = DigitalOceanSandbox()
    response = await call(sandbox, "PATCH", f"{MAIN}/config", {"config": config})
    assert response.status_code == 422 and as_dict(response.json())["id"] == "unprocessable_entity"
    config_now = as_dict(as_dict((await call(sandbox, "GET", f"{MAIN}/config")).json())["config"])
    assert config_now["max_connections"] == 100 and as_dict(config_now["pgbouncer"])["server_lifetime"] == 3600


async def test_patch_config_changes_only_the_keys_sent_and_mysql_refuses_pgbouncer() -> None:
    sandbox = DigitalOceanSandbox()
    sent = {"config": {"pgbouncer": {"autodb_pool_mode": "session"}, "max_connections": 120}}
    assert (await call(sandbox, "PATCH", f"{MAIN}/config", sent)).status_code == 200
    config = as_dict(checked("GET", f"{MAIN}/config", await call(sandbox, "GET", f"{MAIN}/config")))["config"]
    bouncer = as_dict(as_dict(config)["pgbouncer"])
    assert (bouncer["autodb_pool_mode"], bouncer["server_idle_timeout"]) == ("session", 600)
    assert as_dict(config)["max_connections"] == 120
    mysql = f"/v2/databases/{MYSQL_APP_ID}/config"
    assert (await call(sandbox, "PATCH", mysql, {"config": {"pgbouncer": {"min_pool_size": 1}}})).status_code == 422


async def test_resize_shows_resizing_until_the_clock_passes_then_the_new_size_and_budget() -> None:
    clock = Clock()
    sandbox = DigitalOceanSandbox(clock=clock, resize_seconds=120)
    body = {"size": "db-s-2vcpu-4gb", "num_nodes": 2, "storage_size_mib": 61440}
    assert (await call(sandbox, "PUT", f"{SMALL}/resize", body)).status_code == 202
    cluster = as_dict(as_dict((await call(sandbox, "GET", SMALL)).json())["database"])
    assert (cluster["status"], cluster["size"]) == ("resizing", "db-s-1vcpu-1gb")
    again = await call(sandbox, "PUT", f"{SMALL}/resize", body)
    assert again.status_code == 422  # one resize at a time (unverified text)
    clock.now += 119
    assert as_dict(as_dict((await call(sandbox, "GET", SMALL)).json())["database"])["status"] == "resizing"
    clock.now += 1
    cluster = as_dict(as_dict((await call(sandbox, "GET", SMALL)).json())["database"])
    assert (cluster["status"], cluster["size"], cluster["num_nodes"]) == ("online", "db-s-2vcpu-4gb", 2)
    assert sandbox.clusters[PG_SMALL_ID].budget == 97


@pytest.mark.parametrize(
    "body",
    [
        {"size": "db-s-1vcpu-1gb", "num_nodes": 2},  # 1 GB takes no standby
        {"size": "db-s-3vcpu-3gb", "num_nodes": 1},
        {"size": "db-s-2vcpu-4gb", "num_nodes": 4},
        {"size": "db-s-2vcpu-4gb", "num_nodes": True},
        {"size": "db-s-2vcpu-4gb"},
        {"num_nodes": 1},
    ],
)
async def test_resize_with_a_size_or_node_count_not_offered_is_unprocessable(body: dict[str, object]) -> None:
    sandbox = DigitalOceanSandbox()
    response = await call(sandbox, "PUT", f"{SMALL}/resize", body)
    assert response.status_code == 422 and as_dict(response.json())["id"] == "unprocessable_entity"
    assert sandbox.clusters[PG_SMALL_ID].status == "online"


async def test_options_list_each_engine_by_node_count_and_reset_forgets_changes() -> None:
    sandbox = DigitalOceanSandbox()
    options = as_dict(
        as_dict(checked("GET", "/v2/databases/options", await call(sandbox, "GET", "/v2/databases/options")))["options"]
    )
    layouts = as_dict(options["pg"])["layouts"]
    assert isinstance(layouts, list) and [as_dict(layout)["num_nodes"] for layout in layouts] == [1, 2, 3]
    assert (await call(sandbox, "POST", "/v2/databases/options", {})).status_code == 404
    await call(sandbox, "PATCH", f"{MAIN}/config", {"config": {"max_connections": 200}})
    await call(sandbox, "PUT", f"{SMALL}/resize", {"size": "db-s-2vcpu-4gb", "num_nodes": 1})
    sandbox.reset()
    config = as_dict(as_dict((await call(sandbox, "GET", f"{MAIN}/config")).json())["config"])
    assert config["max_connections"] == 100 and sandbox.clusters[PG_SMALL_ID].status == "online"


async def test_state_file_round_trip_keeps_users_config_and_a_running_resize() -> None:
    clock = Clock()
    first = DigitalOceanSandbox(clock=clock)
    await call(first, "POST", f"{MAIN}/users", {"name": "svc"})
    await call(
        first, "PATCH", f"{MAIN}/config", {"config": {"pgbouncer": {"min_pool_size": 4}, "max_connections": 150}}
    )
    await call(first, "PUT", f"{SMALL}/resize", {"size": "db-s-2vcpu-4gb", "num_nodes": 1})
    saved = first.export_state()
    assert "password" not in json.dumps(saved) and first.clusters[PG_MAIN_ID].users["svc"].password not in json.dumps(
        saved
    )
    second = DigitalOceanSandbox(clock=clock)
    second.import_state(saved)
    assert second.clusters[PG_MAIN_ID].users["svc"].password == first.clusters[PG_MAIN_ID].users["svc"].password
    config = as_dict(as_dict((await call(second, "GET", f"{MAIN}/config")).json())["config"])
    assert config["max_connections"] == 150 and as_dict(config["pgbouncer"])["min_pool_size"] == 4
    assert second.clusters[PG_SMALL_ID].status == "resizing"
    clock.now += 60
    assert as_dict(as_dict((await call(second, "GET", SMALL)).json())["database"])["size"] == "db-s-2vcpu-4gb"
    second.import_state({PG_MAIN_ID: {"users": "garbage", "shape": [1], "resize": ["x"]}})  # unreadable: seeds
    assert "svc" not in second.clusters[PG_MAIN_ID].users and second.clusters[PG_SMALL_ID].status == "online"
