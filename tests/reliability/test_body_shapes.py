"""Property test: every provider body model meets real shapes, nulled, cut, given unknown values or extended.

The shapes are the sandbox's own bodies (which follow the OpenAPI fixtures) plus the fields the fixtures document
that the sandbox does not send: tests/fixtures/digitalocean/openapi-subset.yaml, and
tests/fixtures/taurusdb/openapi.yaml, whose schemas are the field lists of huaweicloudsdkgaussdb 3.1.219's models.
For each model, hypothesis draws one decision per object and per field of the bodies that carry that model: keep
it, null it, drop it, give it an unknown value (an enum value no one knows, a number as a string, an empty list or
object), add a field nobody knows, or add the documented fields the sandbox leaves out. The shape variant goes in
at the HTTP boundary (the fakes' `shape`), and a real tool reads it through MCP. The answer must be a result or a
clean error model, never `internal_error`; after an accepted TaurusDB switch, the result must carry the job id.

One app and client for all examples of a model: hypothesis runs synchronously and reaches the client's event
loop through an anyio blocking portal. Each example starts from the seeds (`reset()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult

from poolpilot.server.kernel.errors import ErrorInfo
from poolpilot.server.kernel.shapes import EXTRA_FIELD
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID
from poolpilot.tools.taurusdb.sandbox_seed import INSTANCE_PROD, PROXY_SWITCHABLE
from tests.support import ManualClock, Sandbox, make_app, open_client

EXAMPLES = 500
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
Path_ = tuple[str, ...]  # keys from the body's root; "[]" stands for any list index


def _schemas(name: str) -> dict[str, Any]:
    with (FIXTURES / name).open(encoding="utf-8") as handle:
        schemas: dict[str, Any] = yaml.safe_load(handle)["components"]["schemas"]
    return schemas


DO_SCHEMAS = _schemas("digitalocean/openapi-subset.yaml")
TDB_SCHEMAS = _schemas("taurusdb/openapi.yaml")


def _documented(schema: dict[str, Any]) -> dict[str, object]:
    """A value of each documented field's type (objects and lists stay empty: their insides have their own model)."""
    values: dict[str, object] = {}
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type")
        example = spec.get("example")
        if kind == "array" or (kind is None and "items" in spec):
            values[name] = []
        elif kind in ("string", "integer", "boolean", "number"):
            fallback = {"string": "documented", "integer": 7, "boolean": True, "number": 1.5}[kind]
            values[name] = example if isinstance(example, str | int | float | bool) else fallback
        else:
            values[name] = {}  # $ref, allOf: an object
    return values


@dataclass(frozen=True)
class Model:
    name: str
    provider: str  # whose fake gets the shape
    objects: dict[Path_, str]  # where this model's objects sit in a body -> its documented schema
    calls: tuple[tuple[str, dict[str, Any]], ...]  # tool calls that read it ("switch": see `_switch`)
    examples: int = EXAMPLES


_CONNECTIONS = ("connection", "private_connection", "standby_connection", "standby_private_connection")
_POOL_ARGS = {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"}
_SESSION = {"pool_type": "SESSION"}
_CREATE = {"cluster_id": PG_MAIN_ID, "pool_name": "fresh-pool", "mode": "session", "size": 2, "db": "app"}

MODELS = [
    Model(
        "ApiCluster",
        "digitalocean",
        {("database",): "database_cluster_read", ("databases", "[]"): "database_cluster_read"},
        (
            ("digitalocean_list_clusters", {}),
            ("digitalocean_get_cluster", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_list_pools", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_create_pool", {**_CREATE, "user": "app"}),
            ("digitalocean_get_database", {"cluster_id": PG_MAIN_ID, "database_name": "app"}),
            ("pools_overview", {}),
        ),
    ),
    Model(
        "ApiConnection",
        "digitalocean",
        {
            **{(root, key): "database_connection" for root in ("database", "pool") for key in _CONNECTIONS},
            **{(root, "[]", key): "database_connection" for root in ("databases", "pools") for key in _CONNECTIONS},
        },
        (
            ("digitalocean_get_cluster", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_get_pool", _POOL_ARGS),
            ("digitalocean_create_pool", _CREATE),
        ),
    ),
    Model(
        "ApiUser",
        "digitalocean",
        {("users", "[]"): "database_user", ("user",): "database_user", ("database", "users", "[]"): "database_user"},
        (
            ("digitalocean_list_users", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_get_cluster", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_create_pool", {**_CREATE, "user": "app"}),
        ),
    ),
    Model(
        "ApiPool",
        "digitalocean",
        {("pool",): "connection_pool", ("pools", "[]"): "connection_pool"},
        (
            ("digitalocean_list_pools", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_get_pool", _POOL_ARGS),
            ("digitalocean_create_pool", _CREATE),
            ("digitalocean_update_pool", {**_POOL_ARGS, "size": 21, "mode": "session"}),
            ("digitalocean_delete_pool", _POOL_ARGS),
            ("digitalocean_get_database", {"cluster_id": PG_MAIN_ID, "database_name": "app"}),
            ("pools_overview", {}),
            ("pools_advise", {}),
        ),
    ),
    Model(
        "ApiDatabase",
        "digitalocean",
        {("db",): "database", ("dbs", "[]"): "database"},
        (
            ("digitalocean_list_databases", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_get_database", {"cluster_id": PG_MAIN_ID, "database_name": "app"}),
            ("digitalocean_create_database", {"cluster_id": PG_MAIN_ID, "database_name": "fresh"}),
        ),
    ),
    Model(
        "ApiInstance",
        "taurusdb",
        {
            ("instances", "[]"): "MysqlInstanceListInfo",
            ("instances", "[]", "datastore"): "MysqlDatastoreWithKernelVersion",
        },
        (("taurusdb_list_instances", {}), ("pools_overview", {})),
    ),
    Model(
        "ApiProxyEntry",
        "taurusdb",
        {("proxy_list", "[]"): "MysqlShowProxyResponseV3", ("proxy_list", "[]", "proxy"): "MysqlProxyV3"},
        (
            ("taurusdb_list_proxies", {"instance_id": INSTANCE_PROD}),
            (
                "taurusdb_set_proxy_pool_type",
                {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION"},
            ),
            ("pools_overview", {}),
        ),
    ),
    Model(
        "ApiJob",
        "taurusdb",
        {("job",): "GetJobInfoDetail", ("job", "instance"): "GetJobInstanceInfoDetail"},
        (("switch", {}),),
    ),
    # Issue 22's reads (fewer examples: each is one body read by one or two tools).
    Model(
        "ApiClusterConfig",
        "digitalocean",
        {("config",): "postgres_advanced_config", ("config", "pgbouncer"): "pgbouncer_advanced_config"},
        (
            ("digitalocean_get_cluster_config", {"cluster_id": PG_MAIN_ID}),
            ("digitalocean_update_cluster_config", {"cluster_id": PG_MAIN_ID, "max_connections": 500}),
        ),
        examples=100,
    ),
    Model(
        "ApiProxyVersion",
        "taurusdb",
        {(): "ShowProxyVersionResponse", ("risk",): "ProxyEngineRisk"},
        (("taurusdb_get_proxy_version", {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE}),),
        examples=100,
    ),
    Model(
        "ApiProxyConfiguration",
        "taurusdb",
        {("configurations", "[]"): "ProxyConfiguration"},
        (("taurusdb_get_proxy_parameters", {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE}),),
        examples=100,
    ),
]


# -- the shape variant ------------------------------------------------------------------------------


def _odd(value: object) -> object:
    """A value a client does not expect in this field, but one a real API might send."""
    if isinstance(value, bool):
        return "true" if value else 0
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return "FUTURE_VALUE_\u00e9"  # an enum member added later, or a status nobody documented
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    return "unexpected"


class Variant:
    """A shape built from a fixed list of decisions, so every read of one body in an example sees the same shape."""

    def __init__(self, model: Model, decisions: list[int]) -> None:
        self.model = model
        self.decisions = decisions
        self.schemas = DO_SCHEMAS if model.provider == "digitalocean" else TDB_SCHEMAS
        self._next = 0

    def __call__(self, endpoint: str, body: dict[str, object]) -> dict[str, object]:
        self._next = 0
        result = self._walk(body, ())
        assert isinstance(result, dict)
        return result

    def _decide(self) -> int:
        index, self._next = self._next, self._next + 1
        return self.decisions[index] if index < len(self.decisions) else 0

    def _walk(self, value: object, path: Path_) -> object:
        if isinstance(value, list):
            return [self._walk(item, (*path, "[]")) for item in value]
        if not isinstance(value, dict):
            return value
        inner = {key: self._walk(item, (*path, key)) for key, item in value.items()}
        schema = self.model.objects.get(path)
        if schema is None:
            return inner
        return self._mutate(inner, schema)

    def _mutate(self, obj: dict[str, object], schema: str) -> dict[str, object]:
        extend = self._decide()
        if extend in (6, 7):
            obj = {**obj, EXTRA_FIELD: {"items": [1, "two", None], "flag": None}}
        elif extend in (8, 9):
            obj = {**_documented(self.schemas[schema]), **obj}
        out: dict[str, object] = {}
        for key, value in obj.items():
            choice = self._decide()
            if choice == 5:
                out[key] = None
            elif choice == 6:
                continue
            elif choice == 7:
                out[key] = _odd(value)
            else:
                out[key] = value
        return out


# -- the app, once per model -------------------------------------------------------------------------


@dataclass
class Rig:
    portal: BlockingPortal
    client: Client
    sandbox: Sandbox

    def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        async def run() -> CallToolResult:
            with anyio.fail_after(10):
                return await self.client.call_tool(tool, args)

        return self.portal.call(run)


@contextmanager
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock()
    # No rate limit: the manual clock never moves a minute on, and 500 examples would meet the burst limit.
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, do_rate_limit_per_minute=10**9, do_rate_limit_per_hour=10**9)
    app, sandbox, clock = make_app(
        tmp_path / "audit.jsonl", sandbox=sandbox, clock=clock, toolsets=("digitalocean", "taurusdb", "pools")
    )
    with start_blocking_portal("asyncio") as portal, portal.wrap_async_context_manager(open_client(app)) as client:
        yield Rig(portal, client, sandbox)


def clean(result: CallToolResult, tool: str) -> dict[str, Any]:
    """The structured answer, after checking it is a result or a clean error model (never internal_error)."""
    data: dict[str, Any] | None = result.structured_content
    assert data is not None, (tool, result.content)
    if result.is_error:
        info = ErrorInfo.model_validate(data)
        assert info.code != "internal_error", (tool, info)
        assert info.message and "Traceback" not in info.message
    return data


def _switch(r: Rig) -> None:
    """Preview, confirm, wait for the job (its body is the shaped one), then read it with taurusdb_get_job."""
    args = {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE, "pool_type": "SESSION", "timeout_s": 40}
    preview = clean(r.call("taurusdb_set_proxy_pool_type", args), "preview")
    done = clean(r.call("taurusdb_set_proxy_pool_type", {**args, "confirm_token": preview["confirm_token"]}), "switch")
    (job_id,) = r.sandbox.taurusdb.jobs
    assert done["executed"] is True and done["job"]["job_id"] == job_id, done
    assert done["wait_outcome"] in ("finished", "timed_out", "poll_failed")
    assert job_id in done["message"] or done["wait_outcome"] == "finished", done["message"]
    clean(r.call("taurusdb_get_job", {"job_id": job_id}), "taurusdb_get_job")


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_provider_bodies_in_real_shapes_give_a_result_or_a_clean_error(tmp_path: Path, model: Model) -> None:
    with rig(tmp_path) as r:
        fake: Any = r.sandbox.digitalocean if model.provider == "digitalocean" else r.sandbox.taurusdb

        @settings(
            max_examples=model.examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(decisions=st.lists(st.integers(0, 9), max_size=160), call=st.sampled_from(model.calls))
        def example(decisions: list[int], call: tuple[str, dict[str, Any]]) -> None:
            r.sandbox.digitalocean.reset()
            r.sandbox.taurusdb.reset()
            fake.shape = Variant(model, decisions)
            try:
                tool, args = call
                if tool == "switch":
                    _switch(r)
                else:
                    clean(r.call(tool, args), tool)
            finally:
                fake.shape = None

        example()


def test_every_documented_schema_the_variants_use_exists() -> None:
    for model in MODELS:
        schemas = DO_SCHEMAS if model.provider == "digitalocean" else TDB_SCHEMAS
        for schema in model.objects.values():
            assert _documented(schemas[schema]), (model.name, schema)
