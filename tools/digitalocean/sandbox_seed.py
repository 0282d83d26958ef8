"""Object model and seed data of the DigitalOcean sandbox (the fake API lives in `sandbox.py`).

Seeded clusters (ids are fixed so tests and README examples can name them):

| id                                   | name        | engine, nodes     | size           | RAM GB | budget |
|--------------------------------------|-------------|-------------------|----------------|--------|--------|
| 3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01 | pg-small    | pg 16, 1          | db-s-1vcpu-1gb | 1      | 22     |
| 7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02 | pg-main     | pg 16, 2          | db-s-2vcpu-4gb | 4      | 97     |
| c2a8e6f0-4d1b-4f7a-8e3c-9b5d1a2f6e03 | mysql-app   | mysql 8, 1        | db-s-1vcpu-2gb | 2      | -      |
| e5f4d3c2-b1a0-4987-8654-3210fedcba04 | pg-advanced | advanced_pg 17, 1 | c-96-intel     | (384)  | -      |

| cluster     | dbs                                  | users                            |
|-------------|--------------------------------------|----------------------------------|
| pg-small    | defaultdb                            | doadmin                          |
| pg-main     | defaultdb, app, analytics, reporting | doadmin, app, reporter, migrator |
| mysql-app   | defaultdb, shop                      | doadmin, shop                    |
| pg-advanced | defaultdb                            | doadmin                          |

Seeded pools (name: mode, size, db, user); user "" = inbound-user pool:

| cluster  | pools                                                                 | used / budget |
|----------|-----------------------------------------------------------------------|---------------|
| pg-small | web: transaction, 10, defaultdb, doadmin                              | 10 / 22       |
| pg-main  | app-tx: transaction, 20, app, app                                     | 50 / 97       |
|          | app-session: session, 10, app, migrator                               |               |
|          | reporting: statement, 5, reporting, reporter                          |               |
|          | analytics_inbound: transaction, 15, analytics, ""                     |               |

Only `pg` clusters take pools (NOTES.md §5); pg-advanced answers pool reads (an empty list) and refuses pool
writes (unverified). Pools of an HA cluster (pg-main, 2 nodes) carry standby endpoints, like the cluster.
pg-advanced's slug carries no RAM (NOTES.md §4), so a client cannot compute its budget; the fake still knows a
RAM (384 GB, an arbitrary figure) so that a write meets server-side validation as a real client would.
pg-main carries the tag "production" (for `?tag_name=`). Passwords are f"{password}-{user}-{cluster name}".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote

PG_SMALL_ID = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
PG_MAIN_ID = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"
MYSQL_APP_ID = "c2a8e6f0-4d1b-4f7a-8e3c-9b5d1a2f6e03"
PG_ADVANCED_ID = "e5f4d3c2-b1a0-4987-8654-3210fedcba04"

POOL_MODES = ("session", "transaction", "statement")
CLUSTER_PORT = 25060
POOL_PORT = 25061  # PgBouncer listens beside the server (NOTES.md §10)
_RAM_IN_SLUG = re.compile(r"-(\d+)gb(?:-|$)")


def ram_gb_from_slug(slug: str) -> int | None:
    """RAM of a size slug such as db-s-2vcpu-4gb; None when the slug does not say (c-96-intel)."""
    match = _RAM_IN_SLUG.search(slug)
    return int(match.group(1)) if match else None


@lru_cache(maxsize=1024)
def _quoted(text: str) -> str:
    """A URI component: every list answer builds each cluster's and pool's URIs again, ~30 quotes a request."""
    return quote(text, safe="")


@dataclass(slots=True)
class Pool:
    name: str
    mode: str
    size: int
    db: str
    user: str = ""  # "" = inbound-user pool: clients log in as themselves


@dataclass(slots=True)
class User:
    name: str
    password: str
    role: str = "normal"
    mysql_auth_plugin: str | None = None
    pg_allow_replication: bool | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"name": self.name, "role": self.role, "password": self.password}
        if self.mysql_auth_plugin is not None:
            body["mysql_settings"] = {"auth_plugin": self.mysql_auth_plugin}
        if self.pg_allow_replication is not None:
            body["settings"] = {"pg_allow_replication": self.pg_allow_replication}
        return body


@dataclass(slots=True)
class Cluster:
    id: str
    name: str
    engine: str
    version: str
    semantic_version: str
    size: str
    ram_gb: int | None  # what the fake enforces; None disables the budget check
    num_nodes: int = 1
    region: str = "nyc3"
    status: str = "online"
    created_at: str = "2025-01-15T09:30:00Z"
    tags: list[str] = field(default_factory=list)
    dbs: list[str] = field(default_factory=list)
    users: dict[str, User] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)

    @property
    def budget(self) -> int | None:
        """Backend connections all pools may share: 25 per GB of the primary's RAM minus 3 reserved."""
        return None if self.ram_gb is None else 25 * self.ram_gb - 3

    @property
    def host(self) -> str:
        return f"{self.name}-do-user-4815162-0.db.ondigitalocean.com"

    def _connection(self, host: str, port: int, database: str, user: str) -> dict[str, object]:
        known = self.users.get(user)
        password = known.password if known is not None else ""
        userinfo, path = f"{_quoted(user)}:{_quoted(password)}", _quoted(database)
        if self.engine in ("mysql", "advanced_mysql"):
            uri = f"mysql://{userinfo}@{host}:{port}/{path}?ssl-mode=REQUIRED"
        else:
            # An inbound-user pool keeps the empty "user:password@" part, as doctl PR #1205 printed it.
            uri = f"postgresql://{userinfo}@{host}:{port}/{path}?sslmode=require"
        return {
            "uri": uri,
            "database": database,
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "ssl": True,
        }

    def pool_json(self, pool: Pool) -> dict[str, object]:
        return {
            "user": pool.user,
            "name": pool.name,
            "size": pool.size,
            "db": pool.db,
            "mode": pool.mode,
            # Clients reach a pool by using its name as the database name (NOTES.md §10).
            "connection": self._connection(self.host, POOL_PORT, pool.name, pool.user),
            "private_connection": self._connection("private-" + self.host, POOL_PORT, pool.name, pool.user),
            **self._standby(POOL_PORT, pool.name, pool.user),
        }

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "engine": self.engine,
            "version": self.version,
            "semantic_version": self.semantic_version,
            "num_nodes": self.num_nodes,
            "size": self.size,
            "region": self.region,
            "status": self.status,
            "created_at": self.created_at,
            "private_network_uuid": "d455e75d-4858-4eec-8c95-da2f0a5f93a7",
            "project_id": "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30",
            "tags": list(self.tags),
            "db_names": list(self.dbs),
            "connection": self._connection(self.host, CLUSTER_PORT, "defaultdb", "doadmin"),
            "private_connection": self._connection("private-" + self.host, CLUSTER_PORT, "defaultdb", "doadmin"),
            "users": [user.to_json() for user in self.users.values()],
            "maintenance_window": {"day": "sunday", "hour": "04:00:00", "pending": False, "description": []},
            "storage_size_mib": 30720,
        }
        body.update(self._standby(CLUSTER_PORT, "defaultdb", "doadmin"))
        return body

    def _standby(self, port: int, database: str, user: str) -> dict[str, object]:
        """HA clusters (more than one node) have standby endpoints, for the cluster and for each pool."""
        if self.num_nodes <= 1:
            return {}
        return {
            "standby_connection": self._connection("replica-" + self.host, port, database, user),
            "standby_private_connection": self._connection("private-replica-" + self.host, port, database, user),
        }


def _users(cluster_name: str, password: str, names: list[str], mysql: bool = False) -> dict[str, User]:
    plugin = "caching_sha2_password" if mysql else None
    return {
        name: User(
            name=name,
            password=f"{password}-{name}-{cluster_name}",
            role="primary" if name == "doadmin" else "normal",
            mysql_auth_plugin=plugin,
        )
        for name in names
    }


def _pools(*pools: Pool) -> dict[str, Pool]:
    return {pool.name: pool for pool in pools}


def seed_clusters(password: str) -> dict[str, Cluster]:
    """Fresh copies of the seeded clusters (see the module docstring for the table)."""
    clusters = [
        Cluster(
            id=PG_SMALL_ID,
            name="pg-small",
            engine="pg",
            version="16",
            semantic_version="16.4",
            size="db-s-1vcpu-1gb",
            ram_gb=1,
            dbs=["defaultdb"],
            users=_users("pg-small", password, ["doadmin"]),
            pools=_pools(Pool("web", "transaction", 10, "defaultdb", "doadmin")),
        ),
        Cluster(
            id=PG_MAIN_ID,
            name="pg-main",
            engine="pg",
            version="16",
            semantic_version="16.4",
            size="db-s-2vcpu-4gb",
            ram_gb=4,
            num_nodes=2,
            tags=["production"],
            dbs=["defaultdb", "app", "analytics", "reporting"],
            users=_users("pg-main", password, ["doadmin", "app", "reporter", "migrator"]),
            pools=_pools(
                Pool("app-tx", "transaction", 20, "app", "app"),
                Pool("app-session", "session", 10, "app", "migrator"),
                Pool("reporting", "statement", 5, "reporting", "reporter"),
                Pool("analytics_inbound", "transaction", 15, "analytics", ""),
            ),
        ),
        Cluster(
            id=MYSQL_APP_ID,
            name="mysql-app",
            engine="mysql",
            version="8",
            semantic_version="8.0.35",
            size="db-s-1vcpu-2gb",
            ram_gb=2,
            dbs=["defaultdb", "shop"],
            users=_users("mysql-app", password, ["doadmin", "shop"], mysql=True),
        ),
        Cluster(
            id=PG_ADVANCED_ID,
            name="pg-advanced",
            engine="advanced_pg",
            version="17",
            semantic_version="17.2",
            size="c-96-intel",
            ram_gb=384,
            dbs=["defaultdb"],
            users=_users("pg-advanced", password, ["doadmin"]),
        ),
    ]
    return {cluster.id: cluster for cluster in clusters}
