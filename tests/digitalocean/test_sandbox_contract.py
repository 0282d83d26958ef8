"""The DigitalOcean sandbox against the OpenAPI subset and the behaviour pydo/godo rely on."""

from __future__ import annotations

from urllib.parse import unquote

import httpx2
import pytest

from poolpilot.tools.digitalocean import sandbox as do_sandbox
from poolpilot.tools.digitalocean.sandbox import DigitalOceanSandbox
from poolpilot.tools.digitalocean.sandbox_seed import (
    MYSQL_APP_ID,
    PG_ADVANCED_ID,
    PG_MAIN_ID,
    PG_SMALL_ID,
    ram_gb_from_slug,
)
from tests.digitalocean.openapi_contract import assert_matches_operation, find_operation
from tests.digitalocean.sandbox_app import TOKEN, client_for

pytestmark = pytest.mark.anyio

MAIN = f"/v2/databases/{PG_MAIN_ID}"
SMALL = f"/v2/databases/{PG_SMALL_ID}"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
NEW_POOL: dict[str, object] = {"name": "new-pool", "mode": "transaction", "size": 5, "db": "app", "user": "app"}

# Every operation: method, path ({c} = cluster), request body, documented success status.
OPS: list[tuple[str, str, dict[str, object] | None, int]] = [
    ("GET", "/v2/databases", None, 200),
    ("GET", "/v2/databases/{c}", None, 200),
    ("GET", "/v2/databases/{c}/dbs", None, 200),
    ("POST", "/v2/databases/{c}/dbs", {"name": "newdb"}, 201),
    ("GET", "/v2/databases/{c}/dbs/defaultdb", None, 200),
    ("DELETE", "/v2/databases/{c}/dbs/defaultdb", None, 204),
    ("GET", "/v2/databases/{c}/pools", None, 200),
    ("POST", "/v2/databases/{c}/pools", NEW_POOL, 201),
    ("GET", "/v2/databases/{c}/pools/app-tx", None, 200),
    ("PUT", "/v2/databases/{c}/pools/app-tx", {"mode": "session", "size": 12, "db": "app", "user": "app"}, 204),
    ("DELETE", "/v2/databases/{c}/pools/app-tx", None, 204),
    ("GET", "/v2/databases/{c}/users", None, 200),
    ("GET", "/v2/databases/{c}/users/app", None, 200),
]
OP_IDS = [f"{method} {path}" for method, path, _, _ in OPS]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def call(
    sandbox: DigitalOceanSandbox, method: str, path: str, body: object = None, token: str | None = TOKEN
) -> httpx2.Response:
    async with client_for(sandbox, token) as client:
        return await client.request(method, path, json=body)


def checked(method: str, path: str, response: httpx2.Response) -> object:
    """The parsed body, after checking it and the headers against the subset."""
    body = response.json() if response.content else None
    assert_matches_operation(method, path, response.status_code, body, headers=response.headers)
    return body


def as_dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict), value
    return value


def segments(path: str) -> list[str]:
    return [unquote(part) for part in path.split("/")[1:]]


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS, ids=OP_IDS)
async def test_operation_success_matches_contract(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    sandbox = DigitalOceanSandbox()
    url = path.format(c=PG_MAIN_ID)
    response = await call(sandbox, method, url, body)
    assert response.status_code == status
    parsed = checked(method, url, response)
    if status == 204:
        assert response.content == b"" and parsed is None and "content-type" not in response.headers
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))
    assert "retry-after" not in response.headers
    assert sandbox.endpoint(method, segments(url)) == find_operation(method, url)[0]


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS, ids=OP_IDS)
async def test_operation_without_token_returns_unauthorized(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    url = path.format(c=PG_MAIN_ID)
    for token in (None, ""):
        response = await call(DigitalOceanSandbox(), method, url, body, token=token)
        assert response.status_code == 401
        parsed = as_dict(checked(method, url, response))
        assert (parsed["id"], parsed["message"]) == ("unauthorized", "Unable to authenticate you.")


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS[1:], ids=OP_IDS[1:])
async def test_operation_on_unknown_cluster_returns_not_found(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    url = path.format(c=UNKNOWN)
    response = await call(DigitalOceanSandbox(), method, url, body)
    assert response.status_code == 404
    parsed = as_dict(checked(method, url, response))
    assert parsed["id"] == "not_found"
    assert parsed["message"] == "The resource you requested could not be found."
    assert isinstance(parsed["request_id"], str)


@pytest.mark.parametrize(("method", "path", "body", "status"), OPS, ids=OP_IDS)
async def test_operation_over_burst_limit_returns_too_many_requests(
    method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    clock = Clock()
    sandbox = DigitalOceanSandbox(clock=clock, rate_limit_per_minute=1)
    assert (await call(sandbox, "GET", "/v2/databases")).status_code == 200
    clock.now += 20
    url = path.format(c=PG_MAIN_ID)
    response = await call(sandbox, method, url, body)
    assert response.status_code == 429
    parsed = as_dict(checked(method, url, response))
    assert parsed["id"] == "too_many_requests"
    assert response.headers["retry-after"] == "40"
    assert response.headers["ratelimit-remaining"] == "0"


@pytest.mark.parametrize(
    "path",
    [f"{MAIN}/pools/nope", f"{MAIN}/dbs/nope", f"{MAIN}/users/nope", "/v2/droplets", f"{MAIN}/pools/a/b"],
)
async def test_unknown_object_or_route_returns_not_found(path: str) -> None:
    response = await call(DigitalOceanSandbox(), "GET", path)
    assert response.status_code == 404
    assert as_dict(response.json())["id"] == "not_found"


def test_endpoint_unknown_route_is_none() -> None:
    sandbox = DigitalOceanSandbox()
    assert sandbox.endpoint("GET", ["v2", "droplets"]) is None
    assert sandbox.endpoint("PATCH", ["v2", "databases", PG_MAIN_ID, "pools", "web"]) is None
    assert sandbox.endpoint("GET", ["v2", "databases", PG_MAIN_ID, "pools/x"]) is None
    op = sandbox.endpoint("PUT", ["", "v2", "databases", PG_MAIN_ID, "pools", "a b/c%d"])
    assert op == "databases_update_connectionPool"


async def test_list_clusters_filters_by_tag_name() -> None:
    response = await call(DigitalOceanSandbox(), "GET", "/v2/databases?tag_name=production")
    clusters = as_dict(checked("GET", "/v2/databases", response))["databases"]
    assert isinstance(clusters, list) and [as_dict(c)["name"] for c in clusters] == ["pg-main"]


async def test_get_cluster_carries_connections_users_and_db_names() -> None:
    sandbox = DigitalOceanSandbox(password="SENTINEL-7f1")
    response = await call(sandbox, "GET", MAIN)
    cluster = as_dict(as_dict(checked("GET", MAIN, response))["database"])
    assert (cluster["engine"], cluster["size"], cluster["num_nodes"]) == ("pg", "db-s-2vcpu-4gb", 2)
    assert cluster["db_names"] == ["defaultdb", "app", "analytics", "reporting"]
    connection = as_dict(cluster["connection"])
    assert connection["port"] == 25060 and "SENTINEL-7f1" in str(connection["password"])
    assert str(connection["uri"]).startswith("postgresql://doadmin:SENTINEL-7f1")
    assert "standby_connection" in cluster and "private_connection" in cluster
    users = cluster["users"]
    assert isinstance(users, list) and all("SENTINEL-7f1" in str(as_dict(u)["password"]) for u in users)


async def test_add_pool_returns_pgbouncer_connection_with_pool_as_database() -> None:
    sandbox = DigitalOceanSandbox(password="SENTINEL-7f1")
    response = await call(sandbox, "POST", f"{MAIN}/pools", NEW_POOL)
    pool = as_dict(as_dict(checked("POST", f"{MAIN}/pools", response))["pool"])
    connection = as_dict(pool["connection"])
    assert (connection["port"], connection["database"], connection["user"]) == (25061, "new-pool", "app")
    assert connection["password"] == "SENTINEL-7f1-app-pg-main"
    host = connection["host"]
    assert connection["uri"] == f"postgresql://app:SENTINEL-7f1-app-pg-main@{host}:25061/new-pool?sslmode=require"
    assert as_dict(pool["private_connection"])["host"] == f"private-{host}"
    assert sandbox.clusters[PG_MAIN_ID].pools["new-pool"].size == 5


async def test_add_pool_duplicate_name_returns_pool_name_not_available() -> None:
    response = await call(DigitalOceanSandbox(), "POST", f"{MAIN}/pools", {**NEW_POOL, "name": "app-tx"})
    assert response.status_code == 422
    body = as_dict(checked("POST", f"{MAIN}/pools", response))
    assert (body["id"], body["message"]) == ("unprocessable_entity", "pool name is not available")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "ab"},
        {"name": "x" * 61},
        {"mode": "batch"},
        {"size": 0},
        {"size": "5"},
        {"size": True},
        {"db": "nope"},
        {"user": "nope"},
        {"name": None},
        {"mode": None},
        {"size": None},
        {"db": None},
    ],
    ids=str,
)
async def test_add_pool_invalid_input_returns_unprocessable_entity(change: dict[str, object]) -> None:
    sandbox = DigitalOceanSandbox()
    body = {key: value for key, value in {**NEW_POOL, **change}.items() if value is not None}
    response = await call(sandbox, "POST", f"{MAIN}/pools", body)
    assert response.status_code == 422
    assert as_dict(checked("POST", f"{MAIN}/pools", response))["id"] == "unprocessable_entity"
    assert "new-pool" not in sandbox.clusters[PG_MAIN_ID].pools


@pytest.mark.parametrize("cluster_id", [MYSQL_APP_ID, PG_ADVANCED_ID])
async def test_add_pool_on_non_pg_cluster_returns_unprocessable_entity(cluster_id: str) -> None:
    body = {**NEW_POOL, "db": "defaultdb", "user": "doadmin"}
    response = await call(DigitalOceanSandbox(), "POST", f"/v2/databases/{cluster_id}/pools", body)
    assert response.status_code == 422


async def test_add_pool_within_budget_succeeds_and_one_more_fails() -> None:
    sandbox = DigitalOceanSandbox()
    body = {"mode": "session", "db": "defaultdb", "user": "doadmin"}
    over = await call(sandbox, "POST", f"{SMALL}/pools", {**body, "name": "big", "size": 13})
    assert over.status_code == 422 and "12 of 22" in str(as_dict(over.json())["message"])
    exact = await call(sandbox, "POST", f"{SMALL}/pools", {**body, "name": "big", "size": 12})
    assert exact.status_code == 201
    assert sum(pool.size for pool in sandbox.clusters[PG_SMALL_ID].pools.values()) == 22


async def test_update_pool_budget_excludes_the_pool_itself() -> None:
    sandbox = DigitalOceanSandbox()
    body = {"mode": "transaction", "db": "app", "user": "app"}
    assert (await call(sandbox, "PUT", f"{MAIN}/pools/app-tx", {**body, "size": 68})).status_code == 422
    assert sandbox.clusters[PG_MAIN_ID].pools["app-tx"].size == 20
    assert (await call(sandbox, "PUT", f"{MAIN}/pools/app-tx", {**body, "size": 67})).status_code == 204
    assert sandbox.clusters[PG_MAIN_ID].pools["app-tx"].size == 67


async def test_update_pool_without_user_turns_it_into_inbound_user_pool() -> None:
    sandbox = DigitalOceanSandbox()
    put = await call(sandbox, "PUT", f"{MAIN}/pools/app-tx", {"mode": "transaction", "size": 25, "db": "app"})
    assert put.status_code == 204 and put.content == b""
    got = await call(sandbox, "GET", f"{MAIN}/pools/app-tx")
    pool = as_dict(as_dict(checked("GET", f"{MAIN}/pools/app-tx", got))["pool"])
    connection = as_dict(pool["connection"])
    assert (pool["user"], pool["size"], connection["user"], connection["password"]) == ("", 25, "", "")
    assert str(connection["uri"]).startswith("postgresql://:@")


async def test_update_pool_replaces_every_field() -> None:
    sandbox = DigitalOceanSandbox()
    body = {"mode": "statement", "size": 3, "db": "reporting", "user": "reporter", "name": "ignored"}
    assert (await call(sandbox, "PUT", f"{MAIN}/pools/app-session", body)).status_code == 204
    pool = sandbox.clusters[PG_MAIN_ID].pools["app-session"]
    assert (pool.mode, pool.size, pool.db, pool.user) == ("statement", 3, "reporting", "reporter")
    assert pool.name == "app-session"


@pytest.mark.parametrize("missing", ["mode", "size", "db"])
async def test_update_pool_missing_required_field_returns_unprocessable_entity(missing: str) -> None:
    body = {key: value for key, value in {"mode": "session", "size": 5, "db": "app"}.items() if key != missing}
    response = await call(DigitalOceanSandbox(), "PUT", f"{MAIN}/pools/app-tx", body)
    assert response.status_code == 422
    assert as_dict(checked("PUT", f"{MAIN}/pools/app-tx", response))["id"] == "unprocessable_entity"


async def test_pool_name_with_reserved_characters_is_one_path_segment() -> None:
    sandbox = DigitalOceanSandbox()
    name, encoded = "a b/c%d", "a%20b%2Fc%25d"
    created = await call(sandbox, "POST", f"{MAIN}/pools", {**NEW_POOL, "name": name})
    assert created.status_code == 201
    uri = str(as_dict(as_dict(as_dict(created.json())["pool"])["connection"])["uri"])
    assert f":25061/{encoded}?" in uri
    got = await call(sandbox, "GET", f"{MAIN}/pools/{encoded}")
    assert as_dict(as_dict(checked("GET", f"{MAIN}/pools/x", got))["pool"])["name"] == name
    for wrong in ("a%20b", "a%20b/c%25d", "a%2520b%252Fc%2525d"):
        assert (await call(sandbox, "GET", f"{MAIN}/pools/{wrong}")).status_code == 404
    put = await call(sandbox, "PUT", f"{MAIN}/pools/{encoded}", {"mode": "session", "size": 4, "db": "app"})
    assert put.status_code == 204 and sandbox.clusters[PG_MAIN_ID].pools[name].mode == "session"
    assert (await call(sandbox, "DELETE", f"{MAIN}/pools/{encoded}")).status_code == 204
    assert name not in sandbox.clusters[PG_MAIN_ID].pools


async def test_delete_pool_then_get_returns_not_found() -> None:
    sandbox = DigitalOceanSandbox()
    assert (await call(sandbox, "DELETE", f"{MAIN}/pools/reporting")).status_code == 204
    assert (await call(sandbox, "GET", f"{MAIN}/pools/reporting")).status_code == 404
    assert (await call(sandbox, "DELETE", f"{MAIN}/pools/reporting")).status_code == 404


async def test_add_db_duplicate_or_nameless_returns_unprocessable_entity() -> None:
    sandbox = DigitalOceanSandbox()
    for body in ({"name": "app"}, {}, {"name": 3}):
        response = await call(sandbox, "POST", f"{MAIN}/dbs", body)
        assert response.status_code == 422
        checked("POST", f"{MAIN}/dbs", response)
    assert sandbox.clusters[PG_MAIN_ID].dbs.count("app") == 1


async def test_delete_db_used_by_a_pool_returns_unprocessable_entity() -> None:
    sandbox = DigitalOceanSandbox()
    assert (await call(sandbox, "DELETE", f"{MAIN}/dbs/app")).status_code == 422
    assert "app" in sandbox.clusters[PG_MAIN_ID].dbs


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
async def test_malformed_body_returns_bad_request(raw: bytes) -> None:
    async with client_for(DigitalOceanSandbox()) as client:
        response = await client.post(f"{MAIN}/pools", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and as_dict(response.json())["id"] == "bad_request"


async def test_require_token_accepts_only_that_token() -> None:
    sandbox = DigitalOceanSandbox(require_token="dop_v1_right")
    assert (await call(sandbox, "GET", "/v2/databases", token="dop_v1_wrong")).status_code == 401
    assert (await call(sandbox, "GET", "/v2/databases", token="dop_v1_right")).status_code == 200


async def test_rate_limit_headers_are_integers_on_every_response() -> None:
    sandbox = DigitalOceanSandbox(clock=Clock(1_700_000_000.5), rate_limit_per_minute=5)
    cases = [
        ("GET", MAIN, None, TOKEN),
        ("DELETE", f"{MAIN}/pools/web-x", None, TOKEN),
        ("DELETE", f"{MAIN}/pools/reporting", None, TOKEN),
        ("POST", f"{MAIN}/pools", {"name": "x"}, TOKEN),
        ("GET", MAIN, None, None),
        ("GET", MAIN, None, TOKEN),
        ("GET", MAIN, None, TOKEN),
    ]
    statuses = []
    for method, path, body, token in cases:
        response = await call(sandbox, method, path, body, token=token)
        statuses.append(response.status_code)
        for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            assert response.headers[name].isdigit(), (name, response.headers[name])
        assert ("retry-after" in response.headers) == (response.status_code == 429)
    assert statuses == [200, 404, 204, 422, 401, 200, 429]


async def test_rate_limit_window_slides_per_token() -> None:
    clock = Clock(1_000.0)
    sandbox = DigitalOceanSandbox(clock=clock, rate_limit_per_minute=2, rate_limit_per_hour=3)
    first = await call(sandbox, "GET", "/v2/databases")
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("3", "2")
    assert first.headers["ratelimit-reset"] == "4600"
    clock.now += 10
    assert (await call(sandbox, "GET", "/v2/databases")).headers["ratelimit-remaining"] == "1"
    burst = await call(sandbox, "GET", "/v2/databases")
    assert (burst.status_code, burst.headers["retry-after"]) == (429, "50")
    assert (await call(sandbox, "GET", "/v2/databases", token="dop_v1_other")).status_code == 200
    clock.now += 60
    assert (await call(sandbox, "GET", "/v2/databases")).headers["ratelimit-remaining"] == "0"
    clock.now += 60
    hourly = await call(sandbox, "GET", "/v2/databases")
    assert hourly.status_code == 429 and "retry-after" not in hourly.headers
    clock.now = 1_000.0 + 3600
    assert (await call(sandbox, "GET", "/v2/databases")).status_code == 200


async def test_error_returns_do_shaped_fault_bodies() -> None:
    sandbox = DigitalOceanSandbox()
    for status, error_id in ((500, "server_error"), (503, "service_unavailable"), (429, "too_many_requests")):
        response = sandbox.error(status, retry_after=7 if status == 429 else None)
        assert response.status_code == status and response.headers["content-type"] == "application/json"
        body = httpx2.Response(status, content=bytes(response.body)).json()
        assert_matches_operation("POST", "databases_add_connectionPool", status, body, headers=response.headers)
        assert body["id"] == error_id and response.headers["ratelimit-limit"] == "5000"
        assert response.headers.get("retry-after") == ("7" if status == 429 else None)
    with pytest.raises(ValueError, match="429"):
        sandbox.error(503, retry_after=5)


async def test_reset_restores_seeds_and_forgets_calls() -> None:
    sandbox = DigitalOceanSandbox()
    await call(sandbox, "DELETE", f"{SMALL}/pools/web")
    assert sandbox.calls == [("DELETE", "databases_delete_connectionPool")]
    sandbox.reset()
    assert "web" in sandbox.clusters[PG_SMALL_ID].pools and sandbox.calls == []
    with pytest.MonkeyPatch.context() as patch:  # a long-running sandbox keeps the newest calls, not every one
        patch.setattr(do_sandbox, "CALLS_KEPT", 3)
        for path in [f"{SMALL}/pools"] * 6 + [f"{SMALL}/users"]:
            await call(sandbox, "GET", path)
    assert sandbox.calls == [("GET", "databases_list_connectionPools")] * 3 + [("GET", "databases_list_users")]


def test_seeded_budgets_follow_the_size_slug() -> None:
    clusters = DigitalOceanSandbox().clusters
    for cluster in clusters.values():
        assert ram_gb_from_slug(cluster.size) in (cluster.ram_gb, None)
    assert ram_gb_from_slug(clusters[PG_ADVANCED_ID].size) is None
    assert (clusters[PG_SMALL_ID].budget, clusters[PG_MAIN_ID].budget) == (22, 97)
    assert sum(pool.size for pool in clusters[PG_MAIN_ID].pools.values()) == 50
    assert any(pool.user == "" for pool in clusters[PG_MAIN_ID].pools.values())
