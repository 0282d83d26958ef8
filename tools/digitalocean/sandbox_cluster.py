"""The DigitalOcean sandbox's cluster-level routes (sandbox.py serves the rest): add and delete users, the
configuration (GET/PATCH `/config`), resize (PUT `/resize`) and the size options (GET `/v2/databases/options`).

Paths, bodies and success codes follow DigitalOcean's OpenAPI (databases_add_user 201, databases_delete_user 204,
databases_get_config 200, databases_patch_config 200 without a body, databases_update_clusterSize 202,
databases_list_options 200) and pydo 0.44.0. Error texts nobody documents are marked "unverified".

A resize is followed on the sandbox's clock: the cluster shows `resizing` for `resize_seconds`, then `online`
with its new size and node count, and with them a new pool budget (25 × GB of RAM − 3, sandbox_seed.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from poolpilot.tools.digitalocean.sandbox_seed import POOL_MODES, Cluster, User, ram_gb_from_slug

__all__ = ["OPERATIONS", "ApiError", "ClusterSide", "default_config"]

OPERATIONS: dict[tuple[str, str], str] = {
    ("POST", "{id}/users"): "databases_add_user",
    ("DELETE", "{id}/users/{name}"): "databases_delete_user",
    ("GET", "{id}/config"): "databases_get_config",
    ("PATCH", "{id}/config"): "databases_patch_config",
    ("PUT", "{id}/resize"): "databases_update_clusterSize",
    ("GET", "options"): "databases_list_options",
}

# Slugs as DigitalOcean's own options example lists them (responses/options.yml), a subset: the shared-CPU
# and general-purpose plans. One node offers the 1 GB plan; a standby needs at least 2 GB.
_SIZES = [
    "db-s-1vcpu-1gb",
    "db-s-1vcpu-2gb",
    "db-s-2vcpu-4gb",
    "db-s-4vcpu-8gb",
    "db-s-6vcpu-16gb",
    "gd-2vcpu-8gb",
    "gd-4vcpu-16gb",
    "gd-8vcpu-32gb",
    "gd-16vcpu-64gb",
]
_LAYOUTS: dict[int, list[str]] = {n: _SIZES if n == 1 else _SIZES[1:] for n in (1, 2, 3)}
_OPTIONS: dict[str, dict[str, object]] = {
    "pg": {"regions": ["ams3", "fra1", "lon1", "nyc1", "nyc3", "sfo3"], "versions": ["13", "14", "15", "16", "17"]},
    "mysql": {"regions": ["ams3", "fra1", "lon1", "nyc1", "nyc3", "sfo3"], "versions": ["8"]},
}

# PgBouncer's settings as DigitalOcean documents them (pgbouncer_advanced_config.yml): range or choices.
_INT_RANGES = {
    "min_pool_size": (0, 10000),
    "server_lifetime": (60, 86400),
    "server_idle_timeout": (0, 86400),
    "autodb_pool_size": (0, 10000),
    "autodb_max_db_connections": (0, 2147483647),
    "autodb_idle_timeout": (0, 86400),
}
_STARTUP_PARAMETERS = ("extra_float_digits", "search_path")


class ApiError(Exception):
    """An error answer: status and message (None: the status's default text)."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def default_config() -> dict[str, object]:
    """The `pgbouncer` block a new PostgreSQL cluster shows (PgBouncer's defaults as DigitalOcean runs them;
    unverified against a live cluster)."""
    return {
        "min_pool_size": 0,
        "server_idle_timeout": 600,
        "server_lifetime": 3600,
        "server_reset_query_always": False,
        "ignore_startup_parameters": [],
        "autodb_pool_mode": "transaction",
        "autodb_pool_size": 0,
        "autodb_max_db_connections": 0,
        "autodb_idle_timeout": 3600,
    }


@dataclass
class _Resize:
    done_at: float
    size: str
    num_nodes: int


def _integer(value: object, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"{key} must be an integer")
    if not low <= value <= high:
        raise ApiError(422, f"{key} must be between {low} and {high}")
    return value


def _check_pgbouncer(block: object) -> dict[str, object]:
    if not isinstance(block, dict):
        raise ApiError(422, "pgbouncer must be an object")
    for key, value in block.items():
        if key in _INT_RANGES:
            _integer(value, key, *_INT_RANGES[key])
        elif key == "server_reset_query_always":
            if not isinstance(value, bool):
                raise ApiError(422, f"{key} must be a boolean")
        elif key == "autodb_pool_mode":
            if value not in POOL_MODES:
                raise ApiError(422, f"{key} must be one of session, transaction, statement")
        elif key == "ignore_startup_parameters":
            if not isinstance(value, list) or len(value) > 32 or any(v not in _STARTUP_PARAMETERS for v in value):
                raise ApiError(422, f"{key} must be a list of extra_float_digits, search_path")
        else:
            raise ApiError(422, f"unknown pgbouncer parameter {key}")  # unverified text
    return block


class ClusterSide:
    """State the cluster-level routes keep beside the seeded clusters: configuration overrides and resizes."""

    def __init__(self, clock: Callable[[], float], resize_seconds: float, password: str) -> None:
        self._clock = clock
        self._resize_seconds = resize_seconds
        self._seed = password
        # Users created through the API, per cluster id: their passwords are derived, never stored (state file).
        self._created: set[tuple[str, str]] = set()
        self._pgbouncer: dict[str, dict[str, object]] = {}
        self._max_connections: dict[str, int] = {}
        self._resizes: dict[str, _Resize] = {}

    def reset(self) -> None:
        self._created.clear()
        self._pgbouncer.clear()
        self._max_connections.clear()
        self._resizes.clear()

    def export_cluster(self, cluster: Cluster) -> dict[str, object]:
        """This cluster's part of the sandbox state file (`DigitalOceanSandbox.export_state`)."""
        resize = self._resizes.get(cluster.id)
        return {
            # No secret: a created user's password comes back from `_password`, a seeded one's (and its MySQL auth
            # plugin, "caching_sha2_password") from the seeds.
            "users": [
                [u.name, u.role, u.pg_allow_replication, (cluster.id, u.name) in self._created]
                for u in cluster.users.values()
            ],
            "shape": [cluster.size, cluster.num_nodes, cluster.status, cluster.ram_gb],
            "pgbouncer": dict(self._pgbouncer.get(cluster.id, {})),
            "max_connections": self._max_connections.get(cluster.id),
            "resize": None if resize is None else [resize.done_at, resize.size, resize.num_nodes],
        }

    def import_cluster(self, cluster: Cluster, saved: dict[str, object]) -> None:
        """Restore `export_cluster`; a part that cannot be read keeps the seeds (an older state file has none)."""
        try:
            users = saved.get("users")
            if isinstance(users, list):
                seeded, cluster.users = cluster.users, {}
                for name, role, replication, created in users:
                    key = str(name)
                    if created:
                        self._created.add((cluster.id, key))
                        cluster.users[key] = User(key, self._password(cluster, key), str(role), None, replication)
                    else:
                        cluster.users[key] = seeded[key]
            shape = saved.get("shape")
            if isinstance(shape, list):
                cluster.size, cluster.num_nodes, cluster.status, cluster.ram_gb = shape
            bouncer, max_connections, resize = saved.get("pgbouncer"), saved.get("max_connections"), saved.get("resize")
            if isinstance(bouncer, dict) and bouncer:
                self._pgbouncer[cluster.id] = dict(bouncer)
            if isinstance(max_connections, int):
                self._max_connections[cluster.id] = max_connections
            if isinstance(resize, list):
                self._resizes[cluster.id] = _Resize(float(resize[0]), str(resize[1]), int(resize[2]))
        except (TypeError, ValueError, KeyError):
            return

    def settle(self, clusters: dict[str, Cluster]) -> None:
        """Finish the resizes whose time has come: new size and nodes, back `online`."""
        now = self._clock()
        for cluster_id, resize in list(self._resizes.items()):
            cluster = clusters.get(cluster_id)
            if cluster is not None and now >= resize.done_at:
                cluster.size, cluster.num_nodes, cluster.status = resize.size, resize.num_nodes, "online"
                cluster.ram_gb = ram_gb_from_slug(resize.size) or cluster.ram_gb
                del self._resizes[cluster_id]

    def options(self) -> dict[str, object]:
        layouts = [{"num_nodes": n, "sizes": list(sizes)} for n, sizes in _LAYOUTS.items()]
        return {"options": {engine: {**fixed, "layouts": layouts} for engine, fixed in _OPTIONS.items()}}

    def dispatch(
        self, op: str, cluster: Cluster, name: str, body: dict[str, object]
    ) -> tuple[int, dict[str, object] | None]:
        if op == "databases_add_user":
            return self._add_user(cluster, body)
        if op == "databases_delete_user":
            if name not in cluster.users:
                raise ApiError(404)
            if cluster.users[name].role == "primary":
                raise ApiError(422, "the primary user cannot be deleted")  # unverified
            del cluster.users[name]  # pools that log in as it stay, orphaned, as DigitalOcean leaves them
            return 204, None
        if op == "databases_get_config":
            return 200, {"config": self._config(cluster)}
        if op == "databases_patch_config":
            self._patch(cluster, body)
            return 200, None
        return self._resize(cluster, body)

    # -- users ----------------------------------------------------------------------------------------

    def _add_user(self, cluster: Cluster, body: dict[str, object]) -> tuple[int, dict[str, object] | None]:
        if cluster.engine in ("redis", "valkey"):
            raise ApiError(422, f"user management is not supported for {cluster.engine} clusters")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "name is required and must be a non-empty string")
        if name in cluster.users:
            raise ApiError(422, "user name is not available")  # like pools' TF#925 text; unverified for users
        replication: bool | None = None
        settings = body.get("settings")
        if isinstance(settings, dict) and "pg_allow_replication" in settings:
            flag = settings["pg_allow_replication"]
            if not isinstance(flag, bool):
                raise ApiError(422, "settings.pg_allow_replication must be a boolean")
            replication = flag if cluster.engine == "pg" else None
        user = User(name=name, password=self._password(cluster, name), pg_allow_replication=replication)
        cluster.users[name] = user
        self._created.add((cluster.id, name))
        return 201, {"user": user.to_json()}

    def _password(self, cluster: Cluster, name: str) -> str:
        """16 hex digits, fixed by the sandbox's password, the cluster and the name: nothing to store."""
        return hashlib.sha256(f"{self._seed}\0{cluster.id}\0{name}".encode()).hexdigest()[:16]

    # -- configuration --------------------------------------------------------------------------------

    def _config(self, cluster: Cluster) -> dict[str, object]:
        if cluster.engine != "pg":
            return {}  # unverified: other engines carry their own parameters, none of which poolpilot reads
        block = {**default_config(), **self._pgbouncer.get(cluster.id, {})}
        default_max = 25 * cluster.ram_gb if cluster.ram_gb is not None else None
        max_connections = self._max_connections.get(cluster.id, default_max)
        return {"pgbouncer": block, **({"max_connections": max_connections} if max_connections else {})}

    def _patch(self, cluster: Cluster, body: dict[str, object]) -> None:
        config = body.get("config")
        if not isinstance(config, dict) or not config:
            raise ApiError(422, "config is required and must be a non-empty object")
        if cluster.engine != "pg":
            raise ApiError(422, f"these parameters are not supported for {cluster.engine} clusters")  # unverified
        unknown = sorted(set(config) - {"pgbouncer", "max_connections"})
        if unknown:
            raise ApiError(422, f"unknown configuration parameter {unknown[0]}")  # unverified: sandbox knows few
        block = _check_pgbouncer(config.get("pgbouncer", {}))
        if "max_connections" in config:
            wanted = _integer(config["max_connections"], "max_connections", 25, 2147483647)
            current = self._config(cluster).get("max_connections")
            if isinstance(current, int) and wanted < current:
                raise ApiError(422, "max_connections cannot be decreased")  # documented rule, unverified text
            self._max_connections[cluster.id] = wanted
        self._pgbouncer.setdefault(cluster.id, {}).update(block)

    # -- resize ---------------------------------------------------------------------------------------

    def _resize(self, cluster: Cluster, body: dict[str, object]) -> tuple[int, dict[str, object] | None]:
        size = body.get("size")
        if not isinstance(size, str) or not size:
            raise ApiError(422, "size is required and must be a non-empty string")
        nodes = _integer(body.get("num_nodes"), "num_nodes", 1, 3)
        if "storage_size_mib" in body and body["storage_size_mib"] is not None:
            _integer(body["storage_size_mib"], "storage_size_mib", 1, 2147483647)
        if cluster.status != "online":
            raise ApiError(422, f"cluster is {cluster.status}; try again when it is online")  # unverified
        if cluster.engine not in _OPTIONS or size not in _LAYOUTS[nodes]:
            raise ApiError(422, "invalid size slug for this engine and node count")  # unverified text
        cluster.status = "resizing"
        self._resizes[cluster.id] = _Resize(self._clock() + self._resize_seconds, size, nodes)
        return 202, None
