"""Bodies and results of the cluster-level DigitalOcean tools: users (get, create, delete), the PostgreSQL
configuration (its `pgbouncer` block and `max_connections`), the size options and the resize.

Bodies follow DigitalOcean's OpenAPI (specification/resources/databases/models/advanced_config/
pgbouncer_advanced_config.yml, postgres_advanced_config.yml, options.yml, database_cluster_resize.yml) and are
tolerant like every `Api*` model (server/kernel/bodies.py): a field DigitalOcean adds later is ignored, a value
it grows passes through as a plain string.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from poolpilot.server.kernel.bodies import ProviderBody
from poolpilot.server.kernel.guard import GuardedResult
from poolpilot.tools.digitalocean.models import Budget

__all__ = [
    "CONFIG_FIELDS",
    "PGBOUNCER_FIELDS",
    "ApiConfig",
    "ApiEngineOptions",
    "ApiLayout",
    "ApiOptions",
    "ApiPgBouncer",
    "AutodbIdleTimeout",
    "AutodbMaxDbConnections",
    "AutodbPoolSize",
    "ClusterConfig",
    "ClusterOptions",
    "ClusterResize",
    "ConfigChange",
    "EngineSizes",
    "MaxConnections",
    "MinPoolSize",
    "NumNodes",
    "PgBouncerConfig",
    "ServerIdleTimeout",
    "ServerLifetime",
    "SizeSlug",
    "StartupParameters",
    "StorageMib",
    "User",
    "UserCreated",
    "UserDeletion",
    "WaitOutcome",
]


class PgBouncerSettings(BaseModel):
    # A cluster's PgBouncer block as DigitalOcean names it, shared by the provider body (ApiPgBouncer) and the result
    # (PgBouncerConfig). Every field optional: the API leaves out what was never set, and poolpilot must not invent a
    # value. (A comment, not a docstring: pydantic would copy it into the output schema.)
    min_pool_size: int | None = None
    server_idle_timeout: int | None = None
    server_lifetime: int | None = None
    server_reset_query_always: bool | None = None
    ignore_startup_parameters: list[str] | None = None
    autodb_pool_mode: str | None = None
    autodb_pool_size: int | None = None
    autodb_max_db_connections: int | None = None
    autodb_idle_timeout: int | None = None


PGBOUNCER_FIELDS = tuple(PgBouncerSettings.model_fields)
CONFIG_FIELDS = (*PGBOUNCER_FIELDS, "max_connections")

# A size slug as DigitalOcean writes them (db-s-2vcpu-4gb, gd-4vcpu-16gb, so1_5-2vcpu-16gb, c-96-intel).
SizeSlug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Size slug, e.g. db-s-2vcpu-4gb")]
WaitOutcome = Literal["online", "timed_out", "not_waited", "poll_failed"]
NumNodes = Annotated[int, Field(strict=True, ge=1, le=3, description="Nodes: 1 primary + 0-2 standbys")]
StorageMib = Annotated[int, Field(strict=True, ge=1, le=2147483647, description="Total storage in MiB")]

# Configuration arguments, with the ranges DigitalOcean documents (pgbouncer_advanced_config.yml).
MinPoolSize = Annotated[int, Field(strict=True, ge=0, le=10000, description="Keep at least this many server conns")]
ServerIdleTimeout = Annotated[int, Field(strict=True, ge=0, le=86400, description="Seconds; 0 disables")]
ServerLifetime = Annotated[int, Field(strict=True, ge=60, le=86400, description="Seconds")]
StartupParameters = Annotated[
    list[Literal["extra_float_digits", "search_path"]],
    Field(max_length=32, description="Startup parameters PgBouncer ignores"),
]
AutodbPoolSize = Annotated[int, Field(strict=True, ge=0, le=10000, description="Auto-created pool size; 0 off")]
AutodbMaxDbConnections = Annotated[int, Field(strict=True, ge=0, le=2147483647, description="Per database; 0 = no cap")]
AutodbIdleTimeout = Annotated[int, Field(strict=True, ge=0, le=86400, description="Seconds; 0 disables")]
MaxConnections = Annotated[
    int, Field(strict=True, ge=25, le=2147483647, description="Restarts PostgreSQL; never lowered")
]


# -- provider bodies --------------------------------------------------------------------------------


class ApiPgBouncer(ProviderBody, PgBouncerSettings):
    pass


class ApiConfig(ProviderBody):
    pgbouncer: ApiPgBouncer | None = None
    max_connections: int | None = None

    def flat(self) -> dict[str, object]:
        """Every field poolpilot shows, by its argument name (None: not set on the cluster)."""
        bouncer = (self.pgbouncer or ApiPgBouncer()).model_dump()
        return {**{f: bouncer[f] for f in PGBOUNCER_FIELDS}, "max_connections": self.max_connections}


class ApiLayout(ProviderBody):
    num_nodes: int
    sizes: list[str] = Field(default_factory=list)


class ApiEngineOptions(ProviderBody):
    regions: list[str] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)
    layouts: list[ApiLayout] = Field(default_factory=list)

    def sizes_for(self, num_nodes: int) -> list[str] | None:
        """The slugs offered with this many nodes; None when that node count is not offered at all."""
        for layout in self.layouts:
            if layout.num_nodes == num_nodes:
                return layout.sizes
        return None


class ApiOptions(ProviderBody):
    # Keyed by engine (pg, mysql, advanced_pg, …): a dict, so an engine DigitalOcean adds later is kept.
    options: dict[str, ApiEngineOptions] = Field(default_factory=dict)


# -- results ----------------------------------------------------------------------------------------
# No class docstrings below: pydantic would copy them into every tool's output schema.


class User(BaseModel):
    backend: str
    cluster_id: str
    name: str
    role: str | None = None
    pg_allow_replication: bool | None = None
    password: str | None = None  # only when the operator allows secrets
    pools: list[str] | None = None  # the pools that log in as this user (PostgreSQL clusters)


class UserCreated(BaseModel):
    backend: str
    outcome: Literal["executed"] = "executed"
    target: str
    user: User
    note: str | None = None


class UserDeletion(GuardedResult):
    cluster_id: str
    name: str
    deleted: bool = False


class PgBouncerConfig(PgBouncerSettings):
    pass


class ClusterConfig(BaseModel):
    backend: str
    cluster_id: str
    engine: str
    pgbouncer: PgBouncerConfig
    max_connections: int | None = None


class ConfigChange(GuardedResult):
    cluster_id: str
    before: ClusterConfig | None = None
    after: ClusterConfig | None = None  # read back after the change; null until it is executed


class EngineSizes(BaseModel):
    engine: str
    num_nodes: int
    sizes: list[str]


class ClusterOptions(BaseModel):
    backend: str
    rows: list[EngineSizes]
    versions: dict[str, list[str]]


class ClusterResize(GuardedResult):
    cluster_id: str
    size_before: str | None = None
    num_nodes_before: int | None = None
    size: str | None = None  # what was asked
    num_nodes: int | None = None
    budget_before: Budget | None = None
    budget_after: Budget | None = None  # the pool budget at the new size
    status: str | None = None  # the cluster's status when the call returned
    wait_outcome: WaitOutcome | None = None
