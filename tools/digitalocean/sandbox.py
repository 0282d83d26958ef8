"""A stateful fake of DigitalOcean's managed-database API: the operations poolpilot uses (users, config, resize
and size options in `sandbox_cluster.py`).

It answers the way pydo and godo need (../shared/reference/CLIENTS.md): exact success codes, DO-shaped
error bodies, integer rate-limit headers on every response and `retry-after` only on a burst-limit 429.
Seed data and the object model are in `sandbox_seed.py`. Unsourced choices are marked "unverified".
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import Response

from poolpilot.server.kernel.shapes import Shape
from poolpilot.tools.digitalocean.sandbox_cluster import OPERATIONS as _CLUSTER_OPERATIONS
from poolpilot.tools.digitalocean.sandbox_cluster import ApiError as _ApiError
from poolpilot.tools.digitalocean.sandbox_cluster import ClusterSide
from poolpilot.tools.digitalocean.sandbox_seed import POOL_MODES, Cluster, Pool, seed_clusters

__all__ = ["DigitalOceanSandbox"]

# (method, path shape after /v2/databases) -> operationId; {id} is the cluster, {name} the db/pool/user.
_OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", ""): "databases_list_clusters",
    ("GET", "{id}"): "databases_get_cluster",
    ("GET", "{id}/dbs"): "databases_list",
    ("POST", "{id}/dbs"): "databases_add",
    ("GET", "{id}/dbs/{name}"): "databases_get",
    ("DELETE", "{id}/dbs/{name}"): "databases_delete",
    ("GET", "{id}/pools"): "databases_list_connectionPools",
    ("POST", "{id}/pools"): "databases_add_connectionPool",
    ("GET", "{id}/pools/{name}"): "databases_get_connectionPool",
    ("PUT", "{id}/pools/{name}"): "databases_update_connectionPool",
    ("DELETE", "{id}/pools/{name}"): "databases_delete_connectionPool",
    ("GET", "{id}/users"): "databases_list_users",
    ("GET", "{id}/users/{name}"): "databases_get_user",
    **_CLUSTER_OPERATIONS,  # users, config, resize, options: sandbox_cluster.py
}

CALLS_KEPT = 10_000  # a long-running `poolpilot sandbox` must not grow by one entry per request
_POOL_READS = ("databases_list_connectionPools", "databases_get_connectionPool")
_ERROR_IDS = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "Unable to authenticate you."),
    403: ("forbidden", "You do not have access for the attempted action."),
    404: ("not_found", "The resource you requested could not be found."),
    409: ("conflict", "The request conflicts with the current state of the resource."),
    422: ("unprocessable_entity", "The request could not be processed."),
    429: ("too_many_requests", "API Rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "The upstream server timed out."),
}


class _Verdict(NamedTuple):
    allowed: bool
    retry_after: int | None
    headers: dict[str, str]


class _RateWindow:
    """Sliding window per token: each request counts for one hour (and one minute for the burst limit)."""

    def __init__(self, clock: Callable[[], float], per_minute: int, per_hour: int) -> None:
        self._clock = clock
        self._per_minute = per_minute
        self._per_hour = per_hour
        self._hits: dict[str, deque[float]] = {}

    def clear(self) -> None:
        self._hits.clear()

    def check(self, key: str, *, record: bool) -> _Verdict:
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - 3600:
            hits.popleft()
        in_minute = [hit for hit in hits if hit > now - 60]
        allowed, retry_after = True, None
        if record and len(in_minute) >= self._per_minute:
            # Burst limit: the only 429 that carries retry-after (description.yml "Rate Limit").
            allowed = False
            retry_after = max(1, math.ceil(in_minute[0] + 60 - now)) if in_minute else 60
        elif record and len(hits) >= self._per_hour:
            allowed = False
        elif record:
            hits.append(now)
        remaining = 0 if retry_after is not None else max(self._per_hour - len(hits), 0)
        reset = math.ceil(hits[0] + 3600) if hits else math.ceil(now)
        # Plain integers: pydo fails on "5000.0".
        headers = {"ratelimit-limit": str(self._per_hour), "ratelimit-remaining": str(remaining)}
        headers["ratelimit-reset"] = str(reset)
        return _Verdict(allowed, retry_after, headers)


def _normalise(segments: list[str]) -> list[str]:
    # Tolerate a caller that kept the empty segment before the leading "/"; drop one trailing "/".
    segs = segments[1:] if segments and segments[0] == "" else list(segments)
    return segs[:-1] if len(segs) > 1 and segs[-1] == "" else segs


def _route(method: str, segments: list[str]) -> tuple[str, list[str]] | None:
    segs = _normalise(segments)
    if len(segs) < 2 or segs[0] != DigitalOceanSandbox.prefix or segs[1] != "databases":
        return None
    rest = segs[2:]
    if rest == ["options"]:  # the one fixed word where a cluster id goes; a UUID never spells it
        return ("databases_list_options", []) if method.upper() == "GET" else None
    if len(rest) > 3 or (len(rest) > 1 and "/" in rest[1]):
        return None  # a decoded "/" belongs in a name, never in a collection
    # /v2/databases[/{id}[/<collection>[/{name}]]]: only the collection word is matched literally.
    shape = "/".join(["{id}", *rest[1:2], "{name}"][: len(rest)])
    op = _OPERATIONS.get((method.upper(), shape))
    return (op, [rest[0], *rest[2:]] if rest else []) if op else None


def _text(body: dict[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _ApiError(422, f"{key} is required and must be a non-empty string")
    return value


def _pool_fields(cluster: Cluster, body: dict[str, object]) -> tuple[str, int, str, str]:
    """Validate mode, size, db, user of a POST or PUT body; returns them in that order."""
    mode = _text(body, "mode")
    if mode not in POOL_MODES:
        raise _ApiError(422, "mode must be one of session, transaction, statement")
    size = body.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise _ApiError(422, "size is required and must be an integer")
    if size < 1:
        raise _ApiError(422, "size must be at least 1")
    db = _text(body, "db")
    if db not in cluster.dbs:
        raise _ApiError(422, f"database {db} does not exist in this cluster")
    user = body.get("user")
    if user is None or user == "":
        user = ""  # omitted user: the pool becomes an inbound-user pool (doctl#1553)
    elif not isinstance(user, str) or user not in cluster.users:
        raise _ApiError(422, f"user {user} does not exist in this cluster")
    return mode, size, db, user


def _check_budget(cluster: Cluster, size: int, *, replacing: str | None) -> None:
    budget = cluster.budget
    if budget is None:
        return
    used = sum(pool.size for pool in cluster.pools.values() if pool.name != replacing)
    if used + size > budget:
        available = max(budget - used, 0)
        raise _ApiError(
            422,
            f"pool size {size} exceeds the connections available in this cluster: {available} of {budget} left",
        )


class DigitalOceanSandbox:
    """In-memory DigitalOcean API for clusters, dbs, pools and users; mount it under /v2."""

    prefix = "v2"
    endpoints = frozenset(_OPERATIONS.values())  # fault targets

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        require_token: str | None = None,
        rate_limit_per_minute: int = 250,
        rate_limit_per_hour: int = 5000,
        password: str = "sbx",
        shape: Shape | None = None,
        enforce_budget: bool = True,
        resize_seconds: float = 60.0,
    ) -> None:
        self._require_token = require_token
        # A shape variant of the success bodies (server/kernel/shapes.py); None: the seeds' shapes, unchanged.
        self.shape = shape
        # Off only in tests that prove poolpilot keeps the budget by itself (issue 17's race).
        self._enforce_budget = enforce_budget
        self._password = password
        self._window = _RateWindow(clock, rate_limit_per_minute, rate_limit_per_hour)
        self._side = ClusterSide(clock, resize_seconds, password)
        self._last_key = ""
        self.clusters: dict[str, Cluster] = seed_clusters(password)
        # (method, operationId or None) of the newest requests handled (CALLS_KEPT at least), for tests to check.
        self.calls: list[tuple[str, str | None]] = []

    def reset(self) -> None:
        """Back to the seeded state; forgets rate-limit history and recorded calls."""
        self.clusters = seed_clusters(self._password)
        self._window.clear()
        self._side.reset()
        self._last_key = ""
        self.calls.clear()

    def export_state(self) -> dict[str, object]:
        """What the API can change, per cluster, as JSON: dbs, pools, users, size, config (sandbox_cluster.py)."""
        return {
            cid: {
                "dbs": list(c.dbs),
                "pools": [[p.name, p.mode, p.size, p.db, p.user] for p in c.pools.values()],
                **self._side.export_cluster(c),
            }
            for cid, c in self.clusters.items()
        }

    def import_state(self, data: object) -> None:
        """Restore what `export_state` wrote, on top of the seeds; a cluster it does not know is skipped."""
        self.clusters = seed_clusters(self._password)
        self._side.reset()
        if not isinstance(data, dict):
            return
        for cid, saved in data.items():
            cluster = self.clusters.get(cid)
            if cluster is None or not isinstance(saved, dict):
                continue
            cluster.dbs = [str(db) for db in saved.get("dbs", [])]
            pools = [Pool(str(n), str(m), int(s), str(d), str(u)) for n, m, s, d, u in saved.get("pools", [])]
            cluster.pools = {pool.name: pool for pool in pools}
            self._side.import_cluster(cluster, saved)

    def endpoint(self, method: str, segments: list[str]) -> str | None:
        """The operationId a request would reach (for fault matching); None for unknown routes."""
        found = _route(method, segments)
        return found[0] if found else None

    def error(self, status: int, *, retry_after: int | None = None) -> Response:
        """A DO-shaped error response for an injected fault (429 too_many_requests, 500 server_error, ...)."""
        if retry_after is not None and status != 429:
            # pydo retries any status that carries Retry-After, POSTs included (CLIENTS.md): never on others.
            raise ValueError("retry_after is only sent with 429")
        headers = self._window.check(self._last_key, record=False).headers
        if status == 429:
            headers["ratelimit-remaining"] = "0"
        return self._error(status, None, headers, retry_after)

    async def handle(self, request: Request, segments: list[str]) -> Response:
        """Serve one request; `segments` are the path split on "/" and then percent-decoded one by one."""
        op_found = _route(request.method, segments)
        self.calls.append((request.method.upper(), op_found[0] if op_found else None))
        if len(self.calls) > 2 * CALLS_KEPT:
            del self.calls[:CALLS_KEPT]
        token = self._token(request)
        key = token or ""
        if token is None or (self._require_token is not None and token != self._require_token):
            return self._error(401, None, self._window.check(key, record=False).headers, None)
        self._last_key = key
        verdict = self._window.check(key, record=True)
        if not verdict.allowed:
            return self._error(429, None, verdict.headers, verdict.retry_after)
        if op_found is None:
            return self._error(404, None, verdict.headers, None)
        op, params = op_found
        raw = await request.body()
        try:
            body = self._parse(raw) if request.method.upper() in ("POST", "PUT", "PATCH") else {}
            self._side.settle(self.clusters)
            status, payload = self._dispatch(op, params, body, request.query_params.get("tag_name"))
        except _ApiError as exc:
            return self._error(exc.status, exc.message, verdict.headers, None)
        if payload is None:
            return Response(status_code=status, headers=verdict.headers)
        if self.shape is not None:
            payload = self.shape(op, payload)
        return self._json(status, payload, verdict.headers)

    # -- plumbing -------------------------------------------------------------------------------------

    @staticmethod
    def _token(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    @staticmethod
    def _parse(raw: bytes) -> dict[str, object]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise _ApiError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "request body must be a JSON object")
        return body

    @staticmethod
    def _json(status: int, payload: dict[str, object], headers: dict[str, str]) -> Response:
        content = json.dumps(payload, separators=(",", ":"))
        return Response(content, status_code=status, media_type="application/json", headers=headers)

    def _error(self, status: int, message: str | None, headers: dict[str, str], retry_after: int | None) -> Response:
        error_id, default = _ERROR_IDS.get(status, ("server_error" if status >= 500 else "bad_request", "Error."))
        payload: dict[str, object] = {"id": error_id, "message": message or default, "request_id": str(uuid.uuid4())}
        headers = dict(headers)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return self._json(status, payload, headers)

    def _cluster(self, cluster_id: str) -> Cluster:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            raise _ApiError(404)
        return cluster

    def _pg_cluster(self, cluster_id: str, op: str) -> Cluster:
        cluster = self._cluster(cluster_id)
        # Pools are PostgreSQL only (NOTES.md §5); status and text for other engines are unverified. Unverified
        # too: advanced_pg (PostgreSQL Advanced Edition) answering pool reads but refusing pool writes.
        readable = cluster.engine == "advanced_pg" and op in _POOL_READS
        if cluster.engine != "pg" and not readable:
            raise _ApiError(422, f"connection pools are not supported for {cluster.engine} clusters")
        return cluster

    def _dispatch(
        self, op: str, params: list[str], body: dict[str, object], tag: str | None
    ) -> tuple[int, dict[str, object] | None]:
        if op == "databases_list_clusters":
            found = [c.to_json() for c in self.clusters.values() if tag is None or tag in c.tags]
            return 200, {"databases": found}
        if op == "databases_list_options":
            return 200, self._side.options()
        cluster_id, name = params[0], params[1] if len(params) > 1 else ""
        if op in _CLUSTER_OPERATIONS.values():
            return self._side.dispatch(op, self._cluster(cluster_id), name, body)
        if op == "databases_get_cluster":
            return 200, {"database": self._cluster(cluster_id).to_json()}
        if op in ("databases_list", "databases_add", "databases_get", "databases_delete"):
            return self._dbs(op, self._cluster(cluster_id), name, body)
        if op in ("databases_list_users", "databases_get_user"):
            cluster = self._cluster(cluster_id)
            if op == "databases_list_users":
                return 200, {"users": [user.to_json() for user in cluster.users.values()]}
            if name not in cluster.users:
                raise _ApiError(404)
            return 200, {"user": cluster.users[name].to_json()}
        return self._pools(op, self._pg_cluster(cluster_id, op), name, body)

    def _dbs(
        self, op: str, cluster: Cluster, name: str, body: dict[str, object]
    ) -> tuple[int, dict[str, object] | None]:
        if op == "databases_list":
            return 200, {"dbs": [{"name": db} for db in cluster.dbs]}
        if op == "databases_add":
            new = _text(body, "name")
            if new in cluster.dbs:
                raise _ApiError(422, "database name is not available")
            cluster.dbs.append(new)
            return 201, {"db": {"name": new}}
        if name not in cluster.dbs:
            raise _ApiError(404)
        if op == "databases_get":
            return 200, {"db": {"name": name}}
        in_use = sorted(pool.name for pool in cluster.pools.values() if pool.db == name)
        if in_use:
            # Unverified: refusing keeps pools from pointing at a missing database.
            raise _ApiError(422, f"database {name} is used by connection pools: {', '.join(in_use)}")
        cluster.dbs.remove(name)
        return 204, None

    def _pools(
        self, op: str, cluster: Cluster, name: str, body: dict[str, object]
    ) -> tuple[int, dict[str, object] | None]:
        if op == "databases_list_connectionPools":
            return 200, {"pools": [cluster.pool_json(pool) for pool in cluster.pools.values()]}
        if op == "databases_add_connectionPool":
            new = body.get("name")
            if not isinstance(new, str) or not 3 <= len(new) <= 60:
                raise _ApiError(422, "name must be between 3 and 60 characters")
            if new in cluster.pools:
                raise _ApiError(422, "pool name is not available")  # TF#925
            mode, size, db, user = _pool_fields(cluster, body)
            if self._enforce_budget:
                _check_budget(cluster, size, replacing=None)
            cluster.pools[new] = Pool(new, mode, size, db, user)
            return 201, {"pool": cluster.pool_json(cluster.pools[new])}
        pool = cluster.pools.get(name)
        if pool is None:
            raise _ApiError(404)
        if op == "databases_get_connectionPool":
            return 200, {"pool": cluster.pool_json(pool)}
        if op == "databases_delete_connectionPool":
            del cluster.pools[name]
            return 204, None
        # PUT replaces the whole pool; an omitted user makes it an inbound-user pool, as upstream does.
        mode, size, db, user = _pool_fields(cluster, body)
        if self._enforce_budget:
            _check_budget(cluster, size, replacing=name)
        cluster.pools[name] = Pool(name, mode, size, db, user)
        return 204, None
