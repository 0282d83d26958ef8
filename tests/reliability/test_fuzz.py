"""Property tests over every tool's arguments: invalid input is refused before anything is sent, and names that
pass go out exactly as given.

For each tool (listed from the registered faces, so a new tool is fuzzed, or fails here until it is described in
`VALID`), hypothesis breaks one argument at a time — a bad value, a wrong JSON type, or a missing required
argument — and checks that the answer is a `validation_error` naming that argument, that the text never quotes
the rejected value (each carries a random sentinel), and that no request went upstream: the sandbox saw
nothing, and the PgBouncer instance's DSN points at a closed port, so a connection attempt would end in
`connection_error` rather than `validation_error`. Strings are broken with controls, Unicode Cf/Zl/Zp characters
and whole-segment dots; integers and booleans with the same value in another type (strict inputs).

`test_names_are_refused_before_any_request_or_sent_exactly` then feeds attacker-picked names (dot segments,
separators, bidi and zero-width characters, and plain ones that pass) to every string argument with confirmation
off: either nothing is sent, or every request path decodes, segment by segment, to fixed words, ids and the
argument values themselves.

One app and client per tool: hypothesis runs synchronously and reaches the client's event loop through an
anyio blocking portal.
"""

from __future__ import annotations

import json
import socket
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.text import name_problem
from poolpilot.server.shell.app import build_app
from poolpilot.server.shell.registry import faces
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings
from poolpilot.tools.taurusdb.sandbox import INSTANCE_PROD, PROXY_SESSION, PROXY_SWITCHABLE
from tests.reliability.harness import WiredSandbox
from tests.support import ManualClock, every_toolset, open_client

TOOLS = [spec.name for face in faces() for spec in face.tools()]
EXAMPLES = 6  # random ones per argument, after every `ways` case once

# A valid call of each tool; every example breaks exactly one argument of it (or adds one broken optional one).
VALID: dict[str, dict[str, Any]] = {
    "digitalocean_list_clusters": {},
    "digitalocean_get_cluster": {"cluster_id": PG_MAIN_ID},
    "digitalocean_list_pools": {"cluster_id": PG_MAIN_ID},
    "digitalocean_get_pool": {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"},
    "digitalocean_create_pool": {
        "cluster_id": PG_MAIN_ID,
        "pool_name": "fresh",
        "mode": "session",
        "size": 2,
        "db": "app",
    },
    "digitalocean_update_pool": {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx", "size": 21},
    "digitalocean_delete_pool": {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"},
    "digitalocean_list_databases": {"cluster_id": PG_MAIN_ID},
    "digitalocean_get_database": {"cluster_id": PG_MAIN_ID, "database_name": "app"},
    "digitalocean_create_database": {"cluster_id": PG_MAIN_ID, "database_name": "fresh"},
    "digitalocean_delete_database": {"cluster_id": PG_MAIN_ID, "database_name": "analytics"},
    "digitalocean_list_users": {"cluster_id": PG_MAIN_ID},
    "digitalocean_get_user": {"cluster_id": PG_MAIN_ID, "user_name": "app"},
    "digitalocean_create_user": {"cluster_id": PG_MAIN_ID, "user_name": "fresh"},
    "digitalocean_delete_user": {"cluster_id": PG_MAIN_ID, "user_name": "reporter"},
    "digitalocean_get_cluster_config": {"cluster_id": PG_MAIN_ID},
    "digitalocean_update_cluster_config": {"cluster_id": PG_MAIN_ID, "min_pool_size": 2},
    "digitalocean_list_cluster_options": {},
    "digitalocean_resize_cluster": {"cluster_id": PG_MAIN_ID, "size": "db-s-4vcpu-8gb"},
    "taurusdb_list_instances": {},
    "taurusdb_list_proxies": {"instance_id": INSTANCE_PROD},
    "taurusdb_set_proxy_pool_type": {
        "instance_id": INSTANCE_PROD,
        "proxy_id": PROXY_SWITCHABLE,
        "pool_type": "SESSION",
    },
    "taurusdb_get_job": {"job_id": "0b7e6f1c-1d2a-4e5f-9a8b-7c6d5e4f3a2b"},
    "taurusdb_get_proxy_version": {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SESSION},
    "taurusdb_upgrade_proxy_version": {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SESSION},
    "taurusdb_get_proxy_parameters": {"instance_id": INSTANCE_PROD, "proxy_id": PROXY_SWITCHABLE},
    "taurusdb_set_proxy_parameters": {
        "instance_id": INSTANCE_PROD,
        "proxy_id": PROXY_SWITCHABLE,
        "parameters": [{"name": "max_connections", "value": "900"}],
    },
    "taurusdb_set_proxy_session_consistency": {
        "instance_id": INSTANCE_PROD,
        "proxy_id": PROXY_SWITCHABLE,
        "consistence_mode": "global",
    },
    "pgbouncer_list_pools": {"instance": "fuzz"},
    "pgbouncer_get_stats": {"instance": "fuzz"},
    "pgbouncer_list_clients": {"instance": "fuzz"},
    "pgbouncer_list_servers": {"instance": "fuzz"},
    "pgbouncer_get_config": {"instance": "fuzz"},
    "pgbouncer_set_config": {"instance": "fuzz", "key": "default_pool_size", "value": "7"},
    "pgbouncer_create_pool": {"instance": "fuzz", "database": "fresh", "host": "127.0.0.1"},
    "pgbouncer_update_pool": {"instance": "fuzz", "database": "app", "pool_size": 5},
    "pgbouncer_delete_pool": {"instance": "fuzz", "database": "app"},
    "pgbouncer_pause_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_resume_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_reconnect_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_disable_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_enable_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_kill_database": {"instance": "fuzz", "database": "app"},
    "pgbouncer_wait_close": {"instance": "fuzz", "database": "app"},
    "pgbouncer_reload": {"instance": "fuzz"},
    "pools_overview": {},
    "pools_advise": {},
    "pools_export": {},
    "pools_plan": {"document": {"pools": []}},
    "pools_apply": {"document": {"pools": []}, "plan_id": "0" * 32},
}
INI = "[databases]\napp = host=127.0.0.1 port=5432 dbname=app pool_size=3\n\n[pgbouncer]\nlisten_port = 6432\n"

# -- broken values ---------------------------------------------------------------------------------
# Each argument has a list of ways to break it, each a function of a sentinel: a long random marker put inside the
# value, so that a value echoed in the answer is caught. Every way is tried once with a fixed sentinel, then
# hypothesis mixes them (with random sentinels, several tricks in one value, random numbers) for more.

Make = Callable[[str], object]
CANON = "ZqCanonicalSentinel0x5f3759df"
SENTINELS = st.text(string.ascii_letters + string.digits, min_size=24, max_size=24).map(lambda s: "Zq" + s)
# What can never be a safe URL path segment, a PgBouncer key or a console identifier.
PATH_TRICKS = ["/", "\\", "..", "%2F", "%2e%2e", "%", "/../", "a/b"]
CONTROLS = ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028"]
# Unicode Cf (bidi controls, zero-width, BOM, a tag character) and Zl/Zp: refused in every name (kernel rule).
HIDDEN = ["\u2028", "\u2029", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u061c", "\U000e0041"]
DOT_SEGMENTS = [".", ".."]
UNICODE = ["池", "ünï", "\u202e", "🙂", "\ufeff"]
HUGE = [10**12, 2**63, 2**64 + 1, 10**30, -(2**63) - 1]

URL_NAMES = {"pool_name", "db", "user", "database_name", "user_name"}
PATTERNED = {"cluster_id", "instance_id", "proxy_id", "job_id", "cursor", "plan_id", "target_version"}
PGB_INI_NAME_TOOLS = {"pgbouncer_create_pool", "pgbouncer_update_pool", "pgbouncer_delete_pool"}
PGB_TEXT = {"dbname", "user"}  # 1-63 bytes of UTF-8, no control characters
FREE_FILTERS = {"location"}  # pools_*: a filter by name, checked for length, type and the kernel's name rule


def _appending(trick: str) -> Make:
    return lambda s: s + trick


def _whole(value: str) -> Make:
    return lambda s: value


def _with(tricks: list[str]) -> list[Make]:
    return [_appending(trick) for trick in tricks]


def _string_tricks(tool: str, field: str) -> list[str]:
    """Characters that make this string argument invalid whatever the rest of it is."""
    provider = tool.split("_", 1)[0]
    if field == "confirm_token":
        return []
    if provider == "pools" and field == "provider":
        return PATH_TRICKS + CONTROLS + UNICODE  # anything but an enabled provider's name
    if field in FREE_FILTERS:
        return CONTROLS + HIDDEN
    if provider == "digitalocean" and field in ("tag_name", "size"):
        return PATH_TRICKS + CONTROLS + UNICODE  # a tag (query) and a size slug: fixed alphabets
    if provider == "pgbouncer" and field == "instance":
        return PATH_TRICKS + CONTROLS + HIDDEN  # anything but a configured name
    if provider == "pgbouncer" and field == "database" and tool in PGB_INI_NAME_TOOLS:
        # A pgbouncer.ini key is [A-Za-z0-9_.-]: ".." is a fine key there (no URL ever carries it).
        return [t for t in PATH_TRICKS if t != ".."] + CONTROLS + HIDDEN + [" ", "'", "=", *UNICODE]
    if provider == "pgbouncer" and field == "host":
        return [" ", ";", "'", "=", *CONTROLS, *HIDDEN]
    if provider == "pgbouncer" and (field in PGB_TEXT or field in ("database", "key", "value")):
        return CONTROLS + HIDDEN
    if provider == "pgbouncer" and field == "cursor":
        return ["x", "-", " "]
    if field in URL_NAMES:
        return PATH_TRICKS + CONTROLS + HIDDEN
    if tool == "taurusdb_get_proxy_parameters" and field == "name":
        # A proxy parameter name is [A-Za-z][A-Za-z0-9_.-]*: "a.." is a fine one (it goes in the query, not the path).
        return [t for t in PATH_TRICKS if t != ".."] + CONTROLS + HIDDEN + UNICODE
    if field in PATTERNED:
        return PATH_TRICKS + CONTROLS + UNICODE
    raise AssertionError(f"say how to break {tool}.{field} in test_fuzz.py")


def _kind(schema: dict[str, Any]) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return str(next(t for t in types if t != "null"))


def ways(tool: str, field: str, schema: dict[str, Any]) -> list[Make]:
    """Every way this test breaks `field` (beyond leaving it out)."""
    kind = _kind(schema)
    made: list[Make] = [lambda s: [], lambda s: {"value": s}, lambda s: [s]]  # wrong JSON types
    if kind == "array":  # a list of enum values ([] is a valid one): wrong types, and items outside the enum
        return [lambda s: {"value": s}, lambda s: [s], lambda s: s, lambda s: True, lambda s: 1, lambda s: [[s]]]
    if kind == "string":
        made += [lambda s: 10**12, lambda s: True, lambda s: 1.5]
        if "enum" in schema:
            return [*made, lambda s: s, *(lambda s, v=v: f"{v} ".upper() for v in schema["enum"] if v)]
        if "maxLength" in schema:
            made.append(lambda s: s * (schema["maxLength"] // len(s) + 1))
        if schema.get("minLength", 0) >= 1:
            made.append(lambda s: "")
        if field == "confirm_token":
            return made
        made += _with(_string_tricks(tool, field))
        made += [_whole(d) for d in DOT_SEGMENTS]  # a whole-segment dot: never a name, id or cursor
        if field in URL_NAMES and tool.startswith("digitalocean"):
            made += [lambda s: " " + s, lambda s: s + " "]
        if (field in PATTERNED and field != "job_id") or field == "instance":
            made.append(lambda s: s)  # letters and digits: a well-formed job id, but not any of these
        if tool.startswith("pgbouncer") and (field in PGB_TEXT or field == "database"):
            made.append(lambda s: "é" * 32 + s)  # 64+ characters' worth of UTF-8 bytes in 58 characters
        if tool in PGB_INI_NAME_TOOLS and field == "database":
            made.append(lambda s: "pgbouncer")  # the admin console's own name
        if tool.startswith("pgbouncer") and field == "host":
            made.append(lambda s: "/" + s * 4)  # a socket path longer than sun_path allows
        return made
    if kind == "boolean":
        # Strict: no string, number or JSON-looking text stands in for a boolean.
        return [*made, lambda s: s, lambda s: 2, lambda s: 0.5, lambda s: "true", lambda s: "false", lambda s: 1]
    made += [lambda s: s, lambda s: "ten", lambda s: "1e3x"]
    # Strict: an in-range value in another type (bool, string, float) is refused, not coerced.
    fine = VALID[tool].get(field, schema.get("minimum", 1))
    made += [lambda s: True, lambda s: False, lambda s: str(fine)]
    if kind == "integer":
        made.append(lambda s: float(fine))
    low, high = schema.get("minimum"), schema.get("maximum")
    if high is not None:
        made += [lambda s: high + 1, *(lambda s, n=n: n for n in HUGE if n > high)]
    if low is not None:
        made += [lambda s: low - 1, lambda s: -(10**30)]
    if kind == "integer":
        made.append(lambda s: 2.5)
    return made


@st.composite
def _tricky(draw: st.DrawFn, sentinel: str, tricks: list[str]) -> str:
    """The sentinel with one to three tricks and maybe some unicode, in any order."""
    parts = [sentinel, *draw(st.lists(st.sampled_from(tricks), min_size=1, max_size=3))]
    parts += draw(st.lists(st.sampled_from(UNICODE), max_size=2))
    return "".join(draw(st.permutations(parts)))


def mixed(tool: str, field: str, schema: dict[str, Any]) -> st.SearchStrategy[tuple[object, str]]:
    """A broken value and its sentinel: any of `ways`, or a random mix of tricks or a random out-of-range number."""
    single = st.tuples(st.sampled_from(ways(tool, field, schema)), SENTINELS).map(lambda p: (p[0](p[1]), p[1]))
    kind, low, high = _kind(schema), schema.get("minimum"), schema.get("maximum")
    if kind == "string" and "enum" not in schema and field != "confirm_token":
        tricks = _string_tricks(tool, field)
        if tricks:
            return single | SENTINELS.flatmap(lambda s: _tricky(s, tricks).map(lambda v: (v, s)))
    numbers: st.SearchStrategy[float] = st.nothing()
    if kind == "integer":
        numbers = st.integers(min_value=high + 1 if high is not None else 10**15, max_value=10**30)
        numbers |= st.integers(max_value=low - 1, min_value=-(10**30)) if low is not None else st.nothing()
    if kind == "number":
        numbers = (
            st.floats(min_value=high, exclude_min=True, allow_infinity=False) if high is not None else st.nothing()
        )
        numbers |= st.floats(max_value=low, exclude_max=True, allow_infinity=False) if low is not None else st.nothing()
    return single | numbers.map(lambda n: (n, ""))


@dataclass(frozen=True)
class Case:
    args: dict[str, Any]
    field: str
    marker: str | None  # text that must not come back


def case(tool: str, field: str, value: object, sentinel: str) -> Case:
    marker = sentinel if sentinel and sentinel in json.dumps(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**8:
        marker = str(value)  # a number long enough not to appear by chance
    return Case({**VALID[tool], field: value}, field, marker)


def without(tool: str, field: str) -> Case:
    return Case({k: v for k, v in VALID[tool].items() if k != field}, field, None)


# -- the app, once per tool ------------------------------------------------------------------------


@dataclass
class Fuzzer:
    portal: BlockingPortal
    client: Client
    sandbox: WiredSandbox
    schemas: dict[str, dict[str, Any]]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: a connection attempt is refused


@contextmanager
def fuzzer(tmp_path: Path, **overrides: Any) -> Iterator[Fuzzer]:
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(INI)
    dsn = f"postgresql://fuzz:fuzz-secret@127.0.0.1:{_closed_port()}/pgbouncer?connect_timeout=1"
    instance = PgBouncerInstance(name="fuzz", dsn=dsn, ini_path=str(ini))
    clock = ManualClock()
    sandbox = WiredSandbox(clock=clock)
    app_settings = Settings(
        backend="sandbox",
        audit_log=str(tmp_path / "audit.jsonl"),
        providers={"pgbouncer": PgBouncerSettings(instances=(instance,))},
        **overrides,
    )
    app_settings = replace(app_settings, toolsets=every_toolset(app_settings))  # the off-by-default ones too
    app = build_app(app_settings, sandbox=sandbox, clock=clock, sleep=clock.sleep)
    with start_blocking_portal("asyncio") as portal, portal.wrap_async_context_manager(open_client(app)) as client:
        listed = portal.call(client.list_tools)
        schemas = {tool.name: tool.input_schema for tool in listed.tools}
        yield Fuzzer(portal, client, sandbox, schemas)
    assert ini.read_text() == INI or overrides  # nothing was written either


@pytest.mark.parametrize("tool", TOOLS)
def test_invalid_arguments_are_refused_before_anything_is_sent(tool: str, tmp_path: Path) -> None:
    assert tool in VALID, f"add a valid call of {tool} to VALID in {__file__}"
    with fuzzer(tmp_path) as f:
        schema = f.schemas[tool]

        def check(case: Case) -> None:
            result = f.portal.call(f.client.call_tool, tool, case.args)
            data = result.structured_content or {}
            text = "".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error and data.get("code") == "validation_error", (case, data)
            assert (data.get("field") or "").split(".")[0] == case.field, (case, data)
            assert text.startswith("validation_error: ") and "pydantic" not in text
            if case.marker is not None:
                assert case.marker not in text and case.marker not in json.dumps(data), (case, data)
            assert f.sandbox.wire == [] and f.sandbox.requests == 0

        for field in schema.get("required", []):
            check(without(tool, field))
        for field, field_schema in sorted(schema.get("properties", {}).items()):
            for make in ways(tool, field, field_schema):
                check(case(tool, field, make(CANON), CANON))

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
            @given(broken=mixed(tool, field, field_schema), field=st.just(field))
            def more(broken: tuple[object, str], field: str) -> None:
                check(case(tool, field, *broken))

            more()


# -- hostile names that pass validation reach the wire exactly as given ---------------------------------

# Names as an attacker would pick them: dot segments whole or percent-encoded, separators, bidi and zero-width
# characters, spaces, and plain letters (so that some values pass and go out).
NAMEISH = (
    st.sampled_from([".", "..", "%2E", "%2e%2e", ".a", "a.", "a..b", "a b", "...", "Zq.Zq", "app", "web"])
    | st.text(
        st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Lu", "Ll", "Nd"]) | st.sampled_from(list("._-%")),
        min_size=1,
        max_size=10,
    )
    | st.text(st.sampled_from([*"abcXYZ019._- ", "é", "池"]), min_size=3, max_size=12)
)
# The fixed words of both providers' paths: every other segment of a request must be an argument's value or an id.
PATH_WORDS = {"", "v2", "databases", "pools", "dbs", "users", "v3", "instances", "proxies", "proxy", "jobs"}
PATH_WORDS |= {"connection-pool-type", "connection-pool", "mysql", "taurus", "job", "v3.1"}
PATH_WORDS |= {"taurusproxy", "proxy-version", "upgrade-version", "configurations", "session-consistence"}
PATH_WORDS |= {"config", "resize", "options"}


def _name_fields(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    return sorted(f for f, p in props.items() if _kind(p) == "string" and "enum" not in p and f != "confirm_token")


def check_round_trip(f: Fuzzer, tool: str, field: str, value: str) -> None:
    """Refused with no request sent, or every request's path is made of fixed words, ids and argument values
    (percent-decoded, each a whole segment: nothing collapsed or rewritten), never a PUT/DELETE on a collection."""
    before = len(f.sandbox.raw_paths)
    args = {**VALID[tool], field: value}
    result = f.portal.call(f.client.call_tool, tool, args)
    data = result.structured_content or {}
    sent = f.sandbox.raw_paths[before:]
    if result.is_error and data.get("code") == "validation_error" and not sent:
        return  # refused before any request
    assert name_problem(value) is None, (tool, field, value, data)  # what breaks the name rule never gets here
    known = {str(v) for v in args.values()} | PATH_WORDS
    for method, raw in sent:
        segments = [unquote(part.decode("ascii")) for part in raw.split(b"/")]
        unknown = [seg for seg in segments if seg not in known and not (seg.isascii() and seg.isalnum())]
        assert not unknown, (tool, field, value, method, raw)
        if method in ("PUT", "DELETE"):
            # Never the collection itself (PUT /resize is an action on the cluster, not a collection).
            assert segments[-1] not in PATH_WORDS - {"resize"}, (tool, value, method, raw)
        if value in segments:
            assert quote(value, safe="").encode() in raw.split(b"/"), (tool, value, raw)


@pytest.mark.parametrize("tool", TOOLS)
def test_names_are_refused_before_any_request_or_sent_exactly(tool: str, tmp_path: Path) -> None:
    """Every string argument of every tool, with confirmation off so deletes and updates really go out."""
    with fuzzer(tmp_path, confirm="off") as f:
        for field in _name_fields(f.schemas[tool]):

            @settings(max_examples=EXAMPLES * 5, deadline=None, derandomize=True, database=None)
            @given(value=NAMEISH, field=st.just(field))
            def each(value: str, field: str) -> None:
                check_round_trip(f, tool, field, value)

            each()
