"""DigitalOcean's own Python client, pydo 0.44.0, against the sandbox on a real port (CLIENTS.md).

pydo accepts only the documented success code (plus 404, whose body it *returns*) and raises on anything else,
so a call that returns at all already proves the status; the wire log pins it exactly anyway.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from pydo import Client

from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID
from tests.support import Sandbox, Serve

TOKEN = "compat-do-token"
WEIRD = "a b/c%d"
WEIRD_ON_WIRE = "a%20b%2Fc%25d"
POOL = {"mode": "transaction", "size": 3, "db": "app", "user": "app"}
CALL = {"enforce_https": False}  # plain http on loopback: a per-call option of pydo's bearer-token policy


@dataclass
class Wire:
    """Every response pydo saw, retries included: (method, raw path, status, headers), and each body."""

    seen: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def hook(self, pipeline_response: Any) -> None:
        request, response = pipeline_response.http_request, pipeline_response.http_response
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.seen.append((request.method, urlsplit(request.url).path, response.status_code, headers))
        self.bodies.append(bytes(response.body()))

    def since(self, mark: int) -> list[tuple[str, str, int]]:
        return [(method, path, status) for method, path, status, _ in self.seen[mark:]]


def _client(base: str, wire: Wire, token: str = TOKEN) -> Any:
    # Retries as shipped (pydo retries GETs, and POSTs on 500/503/504), only with short waits and timeouts.
    return Client(
        token,
        endpoint=base,
        raw_response_hook=wire.hook,
        retry_backoff_factor=0.01,
        retry_backoff_max=1,
        connection_timeout=5,
        read_timeout=10,
    )


def _body(error: HttpResponseError) -> Any:
    """The JSON body of the response pydo raised on."""
    assert error.response is not None
    return json.loads(error.response.text())


def _served(serve: Serve) -> tuple[Sandbox, Any, Wire]:
    """A fresh sandbox that wants TOKEN, on its own port, and a pydo client logging the wire."""
    sandbox = Sandbox(do_require_token=TOKEN)
    wire = Wire()
    return sandbox, _client(serve(sandbox), wire), wire


def test_pydo_thirteen_operations_answer_their_documented_statuses(serve: Serve) -> None:
    sandbox, client, wire = _served(serve)
    assert sandbox.faults.rules == []  # no fault unless a test injects one
    d, pg = client.databases, PG_MAIN_ID
    base = f"/v2/databases/{pg}"

    assert any(c["id"] == pg for c in d.list_clusters(**CALL)["databases"])
    assert d.get_cluster(pg, **CALL)["database"]["id"] == pg
    assert "dbs" in d.list(pg, **CALL)
    assert d.add(pg, {"name": "compat_db"}, **CALL)["db"]["name"] == "compat_db"
    assert d.get(pg, "compat_db", **CALL)["db"]["name"] == "compat_db"
    assert d.delete(pg, "compat_db", **CALL) is None
    assert "pools" in d.list_connection_pools(pg, **CALL)
    assert d.add_connection_pool(pg, {"name": "compat_pool", **POOL}, **CALL)["pool"]["size"] == 3
    assert d.get_connection_pool(pg, "compat_pool", **CALL)["pool"]["mode"] == "transaction"
    assert d.update_connection_pool(pg, "compat_pool", {**POOL, "mode": "session", "size": 4}, **CALL) is None
    assert d.delete_connection_pool(pg, "compat_pool", **CALL) is None
    assert any(u["name"] == "app" for u in d.list_users(pg, **CALL)["users"])
    assert d.get_user(pg, "app", **CALL)["user"]["name"] == "app"

    assert wire.since(0) == [  # exactly one request each: nothing was retried
        ("GET", "/v2/databases", 200),
        ("GET", base, 200),
        ("GET", f"{base}/dbs", 200),
        ("POST", f"{base}/dbs", 201),
        ("GET", f"{base}/dbs/compat_db", 200),
        ("DELETE", f"{base}/dbs/compat_db", 204),
        ("GET", f"{base}/pools", 200),
        ("POST", f"{base}/pools", 201),
        ("GET", f"{base}/pools/compat_pool", 200),
        ("PUT", f"{base}/pools/compat_pool", 204),
        ("DELETE", f"{base}/pools/compat_pool", 204),
        ("GET", f"{base}/users", 200),
        ("GET", f"{base}/users/app", 200),
    ]
    for (_, _, status, headers), body in zip(wire.seen, wire.bodies, strict=True):
        if status == 204:  # empty, as pydo requires; and no Content-Length on a 204 (RFC 9110)
            assert body == b"" and headers.get("content-length", "0") == "0"
        else:  # every body is framed by Content-Length: the clients keep connections alive
            assert body and int(headers["content-length"]) == len(body)


def test_pydo_pool_named_with_space_slash_percent_round_trips(serve: Serve) -> None:
    _, client, wire = _served(serve)
    d, pg = client.databases, PG_MAIN_ID

    assert d.add_connection_pool(pg, {"name": WEIRD, **POOL}, **CALL)["pool"]["name"] == WEIRD
    assert d.get_connection_pool(pg, WEIRD, **CALL)["pool"]["name"] == WEIRD
    assert d.update_connection_pool(pg, WEIRD, {**POOL, "mode": "session", "size": 4}, **CALL) is None
    updated = d.get_connection_pool(pg, WEIRD, **CALL)["pool"]
    assert (updated["mode"], updated["size"]) == ("session", 4)
    assert d.delete_connection_pool(pg, WEIRD, **CALL) is None
    assert d.get_connection_pool(pg, WEIRD, **CALL)["id"] == "not_found"

    pool_path = f"/v2/databases/{pg}/pools/{WEIRD_ON_WIRE}"  # one percent-encoded segment
    assert [(m, s) for m, p, s in wire.since(0) if p == pool_path] == [
        ("GET", 200),
        ("PUT", 204),
        ("GET", 200),
        ("DELETE", 204),
        ("GET", 404),
    ]


def test_pydo_duplicate_pool_name_raises_422(serve: Serve) -> None:
    _, client, wire = _served(serve)
    client.databases.add_connection_pool(PG_MAIN_ID, {"name": WEIRD, **POOL}, **CALL)

    with pytest.raises(HttpResponseError) as raised:
        client.databases.add_connection_pool(PG_MAIN_ID, {"name": WEIRD, **POOL}, **CALL)

    assert raised.value.status_code == 422
    body = _body(raised.value)
    assert body["id"] == "unprocessable_entity" and body["message"] and body["request_id"]
    assert [s for _, _, s in wire.since(0)] == [201, 422]  # a 422 is not retried
    pools = client.databases.list_connection_pools(PG_MAIN_ID, **CALL)["pools"]
    assert [p["name"] for p in pools].count(WEIRD) == 1


def test_pydo_unknown_pool_returns_the_404_body(serve: Serve) -> None:
    _, client, wire = _served(serve)
    unknown_cluster = "00000000-0000-0000-0000-000000000000"

    pool = client.databases.get_connection_pool(PG_MAIN_ID, "nope", **CALL)
    cluster = client.databases.get_cluster(unknown_cluster, **CALL)

    for body in (pool, cluster):  # returned, not raised: the documented id and message are what the caller reads
        assert body["id"] == "not_found"
        assert body["message"] == "The resource you requested could not be found."
        assert body["request_id"]
    assert [s for _, _, s in wire.since(0)] == [404, 404]


def test_pydo_rate_limit_headers_are_integers(serve: Serve) -> None:
    _, client, wire = _served(serve)
    client.databases.list_clusters(**CALL)
    client.databases.list_connection_pools(PG_MAIN_ID, **CALL)

    for _, _, status, headers in wire.seen:
        assert status == 200
        for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            assert str(int(headers[name])) == headers[name], (name, headers[name])
        assert "retry-after" not in headers  # only a 429 carries it: pydo retries any status that has it
    first, second = (int(h["ratelimit-remaining"]) for *_, h in wire.seen)
    assert second == first - 1


def test_pydo_inbound_user_pool_is_created_without_a_user(serve: Serve) -> None:
    _, client, wire = _served(serve)
    inbound = {"name": "compat_inbound", "mode": "transaction", "size": 2, "db": "app"}

    created = client.databases.add_connection_pool(PG_MAIN_ID, inbound, **CALL)["pool"]
    fetched = client.databases.get_connection_pool(PG_MAIN_ID, "compat_inbound", **CALL)["pool"]
    seeded = client.databases.get_connection_pool(PG_MAIN_ID, "analytics_inbound", **CALL)["pool"]

    for pool in (created, fetched, seeded):
        assert not pool.get("user")  # the inbound user: whoever connects
    assert (fetched["name"], fetched["db"], fetched["size"]) == ("compat_inbound", "app", 2)
    assert [s for _, _, s in wire.since(0)] == [201, 200, 200]


def test_pydo_wrong_token_raises_401_unauthorized(serve: Serve) -> None:
    wire = Wire()
    client = _client(serve(Sandbox(do_require_token=TOKEN)), wire, token="not-the-token")

    with pytest.raises(ClientAuthenticationError) as raised:
        client.databases.list_clusters(**CALL)

    assert raised.value.status_code == 401
    assert _body(raised.value)["id"] == "unauthorized"
    assert [s for _, _, s in wire.since(0)] == [401]


def test_pydo_retries_a_429_after_its_retry_after(serve: Serve) -> None:
    sandbox, client, wire = _served(serve)
    sandbox.faults.add("429@databases_get_cluster#1")

    started = time.monotonic()
    cluster = client.databases.get_cluster(PG_MAIN_ID, **CALL)
    elapsed = time.monotonic() - started

    assert cluster["database"]["id"] == PG_MAIN_ID
    assert [s for _, _, s in wire.since(0)] == [429, 200]
    limited = wire.seen[0][3]
    assert limited["retry-after"] == "1" and limited["ratelimit-remaining"] == "0"
    assert 0.9 <= elapsed < 5  # pydo honoured Retry-After: 1 s, no more
    assert "retry-after" not in wire.seen[1][3]


def test_pydo_applied_500_on_create_meets_422_on_retry_and_leaves_one_pool(serve: Serve) -> None:
    sandbox, client, wire = _served(serve)
    sandbox.faults.add("applied-500@databases_add_connectionPool#1")

    with pytest.raises(HttpResponseError) as raised:
        client.databases.add_connection_pool(PG_MAIN_ID, {"name": WEIRD, **POOL}, **CALL)

    # pydo resends a POST on 500: the first attempt was committed, so the resend is a duplicate.
    assert raised.value.status_code == 422
    assert _body(raised.value)["id"] == "unprocessable_entity"
    assert wire.since(0) == [("POST", f"/v2/databases/{PG_MAIN_ID}/pools", s) for s in (500, 422)]
    pools = client.databases.list_connection_pools(PG_MAIN_ID, **CALL)["pools"]
    assert [p["name"] for p in pools].count(WEIRD) == 1

    # The fault fired once; the same create on another name now succeeds at the first attempt.
    mark = len(wire.seen)
    client.databases.add_connection_pool(PG_MAIN_ID, {"name": "compat_after", **POOL}, **CALL)
    assert [s for _, _, s in wire.since(mark)] == [201]


def test_pydo_user_config_resize_options_and_tag_filter_answer_their_documented_statuses(serve: Serve) -> None:
    sandbox = Sandbox(do_require_token=TOKEN, do_resize_seconds=0)
    wire = Wire()
    d, pg = _client(serve(sandbox), wire).databases, PG_MAIN_ID
    base = f"/v2/databases/{pg}"

    added = d.add_user(pg, {"name": WEIRD, "settings": {"pg_allow_replication": True}}, **CALL)["user"]
    assert added["name"] == WEIRD and added["password"] and added["settings"] == {"pg_allow_replication": True}
    assert d.get_user(pg, WEIRD, **CALL)["user"]["password"] == added["password"]
    assert d.delete_user(pg, WEIRD, **CALL) is None
    assert d.get_user(pg, WEIRD, **CALL)["id"] == "not_found"  # pydo returns the 404 body
    config = d.get_config(pg, **CALL)["config"]
    assert config["pgbouncer"]["server_lifetime"] == 3600 and config["max_connections"] == 100
    assert d.patch_config(pg, {"config": {"pgbouncer": {"min_pool_size": 3}}}, **CALL) is None
    assert d.get_config(pg, **CALL)["config"]["pgbouncer"]["min_pool_size"] == 3
    pg_options = d.list_options(**CALL)["options"]["pg"]
    assert "db-s-4vcpu-8gb" in next(lay["sizes"] for lay in pg_options["layouts"] if lay["num_nodes"] == 2)
    assert d.update_cluster_size(pg, {"size": "db-s-4vcpu-8gb", "num_nodes": 2}, **CALL) is None
    assert d.get_cluster(pg, **CALL)["database"]["size"] == "db-s-4vcpu-8gb"  # resize_seconds=0: done at once
    assert [c["name"] for c in d.list_clusters(tag_name="production", **CALL)["databases"]] == ["pg-main"]

    with pytest.raises(HttpResponseError) as raised:
        d.add_user(pg, {"name": "app"}, **CALL)
    assert raised.value.status_code == 422 and _body(raised.value)["id"] == "unprocessable_entity"

    user_path = f"{base}/users/{WEIRD_ON_WIRE}"
    assert wire.since(0) == [  # exactly one request each: nothing was retried
        ("POST", f"{base}/users", 201),
        ("GET", user_path, 200),
        ("DELETE", user_path, 204),
        ("GET", user_path, 404),
        ("GET", f"{base}/config", 200),
        ("PATCH", f"{base}/config", 200),
        ("GET", f"{base}/config", 200),
        ("GET", "/v2/databases/options", 200),
        ("PUT", f"{base}/resize", 202),
        ("GET", base, 200),
        ("GET", "/v2/databases", 200),
        ("POST", f"{base}/users", 422),
    ]
