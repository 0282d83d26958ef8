"""DigitalOcean bodies as the API sends them (`Api*`, tolerant: server/kernel/bodies.py) and our tools' results.

Argument aliases live here too, so every tool validates a cluster id, a pool name or a mode the same way,
before anything is sent.

Name rule (pools, databases, users). DigitalOcean documents only a length for pool names (3–60); the names
go into URL paths, so we refuse what can never be a safe path segment whatever the encoding: `/` and `\\`
(a proxy may split on them), `%` (a name like `a%2Fb` means something else to anything that decodes twice),
`..` anywhere and `.` as the whole name (dot segments are normalised away by URL libraries and proxies even
when the rest is encoded), leading/trailing spaces, and what the kernel's name rule refuses everywhere
(server/kernel/text.py: Unicode Cc, Cf, Zl, Zp). Everything else (`_`, `.`, `-`, letters, digits, even
spaces inside) is allowed and always sent percent-encoded with `quote(v, safe='')`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.bodies import ProviderBody
from poolpilot.server.kernel.guard import GuardedResult
from poolpilot.server.kernel.text import check_name

__all__ = [
    "ApiCluster",
    "ApiConnection",
    "ApiDatabase",
    "ApiPool",
    "ApiUser",
    "Budget",
    "Cluster",
    "ClusterId",
    "ClusterList",
    "ClusterRow",
    "Connection",
    "Cursor",
    "Database",
    "DatabaseCreated",
    "DatabaseDeletion",
    "DatabaseList",
    "DatabaseRow",
    "DbName",
    "Engine",
    "PageSize",
    "Pool",
    "PoolChange",
    "PoolCreated",
    "PoolDeletion",
    "PoolList",
    "PoolMode",
    "PoolName",
    "PoolRow",
    "TagName",
    "UserList",
    "UserName",
    "UserRow",
    "connection_from",
]

POOL_MODES = ("session", "transaction", "statement")
# PostgreSQL-family engines: pool reads work on all; pool writes only where the API documents them (lookups.py).
PG_ENGINES = ("pg", "advanced_pg")
ENGINES = ("pg", "mysql", "redis", "valkey", "mongodb", "kafka", "opensearch", "advanced_pg", "advanced_mysql")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _cluster_id(value: str) -> str:
    if not _UUID.fullmatch(value):  # fullmatch: `$` would let a trailing newline through
        raise ValueError("must be a cluster UUID such as 7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02")
    return value.lower()


def _safe_segment(value: str) -> str:
    if "/" in value or "\\" in value:
        raise ValueError("must not contain '/' or '\\'")
    if "%" in value:
        raise ValueError("must not contain '%'")
    if ".." in value:
        raise ValueError("must not contain '..'")
    check_name(value)
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


ClusterId = Annotated[
    str,
    Field(json_schema_extra={"format": "uuid"}),  # the name and the format say it all
    AfterValidator(_cluster_id),
]
PoolName = Annotated[
    str,
    Field(min_length=3, max_length=60, description="Pool name; no / \\ % .. or control chars"),
    AfterValidator(_safe_segment),
]
DbName = Annotated[str, Field(min_length=1, max_length=63, description="Database name"), AfterValidator(_safe_segment)]
UserName = Annotated[
    str, Field(min_length=1, max_length=63, description="Database user"), AfterValidator(_safe_segment)
]
PoolMode = Literal["session", "transaction", "statement"]
# DigitalOcean tags: letters, digits, ":", "-", "_", at most 255 (tags API); it goes into a query string.
TagName = Annotated[str, Field(pattern=r"^[A-Za-z0-9:_-]{1,255}$")]
Engine = Literal["pg", "mysql", "redis", "valkey", "mongodb", "kafka", "opensearch", "advanced_pg", "advanced_mysql"]
PageSize = Annotated[int, Field(strict=True, ge=1, le=100, description="Rows per page")]
Cursor = Annotated[str | None, Field(pattern=r"^[0-9]{1,6}$", description="next_cursor of the previous page")]


# -- provider bodies --------------------------------------------------------------------------------


# Enum-like fields (engine, status, mode, role) are plain strings: a value DigitalOcean adds later passes through
# verbatim, in the results too, rather than failing the read.
_Api = ProviderBody


class ApiConnection(_Api):
    uri: str = ""
    database: str = ""
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = ""
    ssl: bool | None = None


class ApiUser(_Api):
    name: str
    role: str | None = None
    password: str = ""
    settings: dict[str, object] | None = None  # PostgreSQL: pg_allow_replication


class ApiCluster(_Api):
    id: str
    name: str
    engine: str
    version: str = ""
    semantic_version: str | None = None
    num_nodes: int = 1
    size: str = ""
    region: str = ""
    status: str = ""
    created_at: str | None = None
    tags: list[str] | None = None
    db_names: list[str] | None = None
    users: list[ApiUser] | None = None
    connection: ApiConnection | None = None
    private_connection: ApiConnection | None = None
    standby_connection: ApiConnection | None = None
    standby_private_connection: ApiConnection | None = None


class ApiPool(_Api):
    name: str
    mode: str
    size: int
    db: str
    user: str | None = None  # "" or absent: the inbound-user pool (clients log in as themselves)
    connection: ApiConnection | None = None
    private_connection: ApiConnection | None = None
    # HA clusters (num_nodes > 1): the pool's endpoints on the standby node(s) (OpenAPI connection_pool, godo).
    standby_connection: ApiConnection | None = None
    standby_private_connection: ApiConnection | None = None

    def row(self) -> PoolRow:
        return PoolRow(name=self.name, mode=self.mode, size=self.size, db=self.db, user=self.user or None)


class ApiDatabase(_Api):
    name: str


# -- results ----------------------------------------------------------------------------------------
# No class docstrings below: pydantic would copy them into every tool's output schema.


class Connection(BaseModel):
    host: str
    port: int | None = None
    database: str
    user: str | None = None
    sslmode: str | None = None
    uri: str | None = None  # its password part is masked unless the operator allows secrets
    password: str | None = None  # only when the operator allows secrets


def _sslmode(api: ApiConnection) -> str | None:
    try:
        query = parse_qs(urlsplit(api.uri).query) if api.uri else {}
    except ValueError:  # a malformed URI (e.g. "[" in the host) still has a usable host and port
        query = {}
    for key in ("sslmode", "ssl-mode"):
        if query.get(key):
            return query[key][0]
    if api.ssl is None:
        return None
    return "require" if api.ssl else "disable"


def _masked_uri(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "" if "@" in uri else uri  # unparseable: never risk showing a password in it
    if not parts.password:
        return uri
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def connection_from(api: ApiConnection | None, *, allow_secrets: bool) -> Connection | None:
    """Host, port, database, user and sslmode stay visible; the password only when the operator allows it."""
    if api is None or not api.host:
        return None
    return Connection(
        host=api.host,
        port=api.port,
        database=api.database,
        user=api.user or None,
        sslmode=_sslmode(api),
        uri=(api.uri if allow_secrets else _masked_uri(api.uri)) or None,
        password=(api.password or None) if allow_secrets else None,
    )


class ClusterRow(BaseModel):
    id: str
    name: str
    engine: str
    version: str
    status: str
    region: str
    size: str
    nodes: int
    ram_gb: int | None


class ClusterList(BaseModel):
    backend: str
    rows: list[ClusterRow]
    total: int
    next_cursor: str | None = None


class Cluster(ClusterRow):
    backend: str
    semantic_version: str | None = None
    created_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    db_names: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    pools_supported: bool
    connection: Connection | None = None
    private_connection: Connection | None = None
    standby_connection: Connection | None = None
    standby_private_connection: Connection | None = None


class Budget(BaseModel):
    max: int | None  # null when the size slug carries no RAM (the API then decides)
    allocated: int
    available: int | None


class PoolRow(BaseModel):
    name: str
    mode: str
    size: int
    db: str
    user: str | None  # null: inbound-user pool


class PoolList(BaseModel):
    backend: str
    cluster_id: str
    cluster_name: str
    rows: list[PoolRow]
    budget: Budget
    total: int
    next_cursor: str | None = None


class Pool(PoolRow):
    backend: str
    cluster_id: str
    connection: Connection | None = None
    private_connection: Connection | None = None
    standby_connection: Connection | None = None
    standby_private_connection: Connection | None = None


class PoolCreated(BaseModel):
    backend: str
    outcome: Literal["executed"] = "executed"
    target: str
    pool: Pool
    budget: Budget
    note: str | None = None


class PoolChange(GuardedResult):
    cluster_id: str
    pool_name: str
    before: PoolRow | None = None
    after: PoolRow | None = None  # read back after the change; null until it is executed


class PoolDeletion(GuardedResult):
    cluster_id: str
    pool_name: str
    deleted: PoolRow | None = None  # the pool as it was; null until it is executed


class DatabaseRow(BaseModel):
    name: str


class DatabaseList(BaseModel):
    backend: str
    cluster_id: str
    rows: list[DatabaseRow]
    total: int
    next_cursor: str | None = None


class Database(BaseModel):
    backend: str
    cluster_id: str
    name: str
    pools: list[str] | None = None  # pools that use it (PostgreSQL clusters)


class DatabaseCreated(BaseModel):
    backend: str
    outcome: Literal["executed"] = "executed"
    target: str
    cluster_id: str
    name: str
    note: str | None = None


class DatabaseDeletion(GuardedResult):
    cluster_id: str
    name: str
    deleted: bool = False


class UserRow(BaseModel):
    name: str
    role: str | None = None


class UserList(BaseModel):
    backend: str
    cluster_id: str
    rows: list[UserRow]
    total: int
    next_cursor: str | None = None
