"""The TaurusDB sandbox over httpx2's ASGI transport: auth, routing, jobs, errors, and schema conformance."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
import jsonschema
import pytest
import yaml
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.tools.taurusdb.sandbox import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SESSION,
    PROXY_SWITCHABLE,
    SANDBOX_AK,
    SANDBOX_PROJECT_ID,
    SANDBOX_SK,
    TaurusDBSandbox,
)
from poolpilot.tools.taurusdb.signer import canonical_query, sign_request

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent.parent / "fixtures" / "taurusdb"
HOST = "127.0.0.1:8443"
T0 = 1756972800.0  # 2025-09-04T08:00:00Z
P = SANDBOX_PROJECT_ID
INSTANCES = "/v3/{project_id}/instances"
PROXIES = "/v3/{project_id}/instances/{instance_id}/proxies"
POOL_TYPE = "/v3/{project_id}/instances/{instance_id}/proxy/{proxy_id}/connection-pool-type"
JOBS = "/v3/{project_id}/jobs"
SESSION = b'{"connection_pool_type": "SESSION"}'  # simplejson's default separators, as the SDK sends it


class _Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class _App:
    """What the lead's composition does: split the raw path on "/", then decode each segment."""

    def __init__(self, sandbox: TaurusDBSandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        segments = [unquote(part) for part in raw.split(b"?")[0].decode("latin-1").split("/")[1:]]
        response = await self.sandbox.handle(Request(scope, receive), segments)
        await response(scope, receive, send)


def _client(sandbox: TaurusDBSandbox, host: str = HOST) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=InProcessTransport(_App(sandbox)), base_url=f"http://{host}")


async def _signed(
    client: httpx2.AsyncClient,
    method: str,
    path: str,
    query: Sequence[tuple[str, object]] = (),
    body: bytes | None = None,
    *,
    at: float = T0,
    sk: str = SANDBOX_SK,
) -> httpx2.Response:
    """Send a request signed the way huaweicloudsdkcore signs it (headers per CLIENTS.md)."""
    headers = {
        "Content-Type": "application/json;charset=utf-8" if body is not None else "application/json",
        "User-Agent": "huaweicloud-usdk-python/3.0; poolpilot-tests",
        "X-Project-Id": P,
    }
    added = sign_request(method, HOST, path, list(query), headers, body, ak=SANDBOX_AK, sk=sk, now=lambda: at)
    sent_query = canonical_query(list(query))
    url = path + (f"?{sent_query}" if sent_query else "")
    return await client.request(method, url, headers={**headers, **added}, content=body)


def _spec() -> dict[str, object]:
    spec = yaml.safe_load((FIXTURES / "openapi.yaml").read_text(encoding="utf-8"))
    assert isinstance(spec, dict)
    return spec


def _at(node: object, *keys: str | int) -> object:
    """Walk parsed JSON/YAML by keys and list indexes, asserting each step's shape."""
    for key in keys:
        if isinstance(key, str) and isinstance(node, dict):
            node = node[key]
            continue
        assert isinstance(key, int) and isinstance(node, list), f"cannot take {key!r} of {node!r}"
        node = node[key]
    return node


def _items(node: object, key: str) -> list[object]:
    items = _at(node, key)
    assert isinstance(items, list)
    return items


def _resolved(node: object, spec: dict[str, object]) -> object:
    """Inline every local $ref and forbid unknown keys, so a misspelt field in the fake fails here."""
    if isinstance(node, list):
        return [_resolved(item, spec) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolved(_at(spec, *str(node["$ref"]).removeprefix("#/").split("/")), spec)
    out = {key: _resolved(value, spec) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


SPEC = _spec()


def _check(response: httpx2.Response, method: str, template: str, status: int) -> dict[str, object]:
    """Assert status, the headers every response carries, and the body against openapi.yaml's schema."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert parsedate_to_datetime(response.headers["date"]) is not None
    responses = _at(SPEC, "paths", template, method.lower(), "responses")
    assert isinstance(responses, dict)
    declared = responses.get(str(status), responses["default"])
    schema = _at(_resolved(declared, SPEC), "content", "application/json", "schema")
    assert isinstance(schema, dict)
    body = response.json()
    jsonschema.validate(body, schema)
    assert isinstance(body, dict)
    return body


def _error_code(body: dict[str, object]) -> object:
    return body["error_code"]


async def test_list_instances_signed_request_succeeds() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        response = await _signed(client, "GET", f"/v3/{P}/instances", [("offset", 0), ("limit", 100)])
    body = _check(response, "GET", INSTANCES, 200)
    assert body["total_count"] == 2
    assert [_at(row, "id") for row in _items(body, "instances")] == [INSTANCE_PROD, INSTANCE_ANALYTICS]


async def test_list_instances_honours_limit_offset_and_name_filter() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        second = await _signed(client, "GET", f"/v3/{P}/instances", [("limit", 1), ("offset", 1)])
        fuzzy = await _signed(client, "GET", f"/v3/{P}/instances", [("name", "*prod")])
        bad = await _signed(client, "GET", f"/v3/{P}/instances", [("limit", 0)])
    body = _check(second, "GET", INSTANCES, 200)
    assert body["total_count"] == 2 and [_at(row, "name") for row in _items(body, "instances")] == ["taurus-analytics"]
    assert _check(fuzzy, "GET", INSTANCES, 200)["total_count"] == 1
    assert _error_code(_check(bad, "GET", INSTANCES, 400)) == "DBS.200001"


async def test_list_proxies_shows_seeded_proxies_by_pool_id() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        prod = await _signed(client, "GET", f"/v3/{P}/instances/{INSTANCE_PROD}/proxies", [("limit", 100)])
        analytics = await _signed(client, "GET", f"/v3/{P}/instances/{INSTANCE_ANALYTICS}/proxies")
        paged = await _signed(client, "GET", f"/v3/{P}/instances/{INSTANCE_PROD}/proxies", [("limit", 1)])
    rows = _items(_check(prod, "GET", PROXIES, 200), "proxy_list")
    assert [(_at(r, "proxy", "pool_id"), _at(r, "proxy", "connection_pool_type")) for r in rows] == [
        (PROXY_SWITCHABLE, "CLOSED"),
        (PROXY_SESSION, "SESSION"),
    ]
    other = _items(_check(analytics, "GET", PROXIES, 200), "proxy_list")
    flags = {str(_at(r, "proxy", "pool_id")): _at(r, "proxy", "switch_connection_pool_type_enabled") for r in other}
    assert flags == {PROXY_OLD_KERNEL: True, PROXY_FLAG_FALSE: False}
    assert "total_count" not in _check(paged, "GET", PROXIES, 200)


async def test_sdk_wire_capture_is_accepted() -> None:
    vectors = json.loads((FIXTURES / "signing-vectors.json").read_text(encoding="utf-8"))["vectors"]
    wire = next(v for v in vectors if v["name"] == "wire-client-put-session")
    headers = {k: v for k, v in wire["wire_headers"].items() if k not in ("Content-Length", "Connection")}
    sandbox = TaurusDBSandbox(clock=_Clock(T0 + 3600))  # captured at 09:00:00Z
    async with _client(sandbox, host=wire["host"]) as client:
        response = await client.put(urlsplit(wire["url"]).path, headers=headers, content=wire["body"].encode())
    body = _check(response, "PUT", POOL_TYPE, 200)
    assert sandbox.jobs[str(body["job_id"])].connection_pool_type == "SESSION"


async def test_bad_signature_is_401_apig_0301() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        response = await _signed(client, "GET", f"/v3/{P}/instances", sk="not-the-secret")
        unsigned = await client.get(f"/v3/{P}/instances")
    body = _check(response, "GET", INSTANCES, 401)
    assert body["error_code"] == "APIG.0301"
    assert body["error_msg"] == "Incorrect IAM authentication information: verify aksk signature fail"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "x-auth-token not found" in str(_check(unsigned, "GET", INSTANCES, 401)["error_msg"])


async def test_skewed_sandbox_clock_rejects_signature_as_expired() -> None:
    sandbox = TaurusDBSandbox(clock=_Clock(), clock_skew_s=1200)
    async with _client(sandbox) as client:
        response = await _signed(client, "GET", f"/v3/{P}/instances")
        within = await _signed(client, "GET", f"/v3/{P}/instances", at=T0 + 1200 - 840)
    body = _check(response, "GET", INSTANCES, 401)
    assert body["error_msg"] == "Incorrect IAM authentication information: signature expired: X-Sdk-Date 20 minutes off"
    assert parsedate_to_datetime(response.headers["date"]).timestamp() == T0 + 1200
    _check(within, "GET", INSTANCES, 200)


async def test_iam_token_authenticates_and_wrong_token_is_401() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock(), iam_token="tok")) as client:
        good = await client.get(f"/v3/{P}/instances", headers={"X-Auth-Token": "tok"})
        bad = await client.get(f"/v3/{P}/instances", headers={"X-Auth-Token": "nope"})
    _check(good, "GET", INSTANCES, 200)
    assert _check(bad, "GET", INSTANCES, 401)["error_msg"] == (
        "Incorrect IAM authentication information: decrypt token fail"
    )


async def test_other_project_in_path_is_403() -> None:
    other = "0" * 32
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        signed = await _signed(client, "GET", f"/v3/{other}/instances")
        token = await client.get(f"/v3/{other}/jobs", params={"id": "x"}, headers={"X-Auth-Token": "sandbox-iam-token"})
    assert _error_code(_check(signed, "GET", INSTANCES, 403)) == "APIG.0302"
    assert _error_code(_check(token, "GET", JOBS, 403)) == "APIG.0302"


async def test_set_pool_type_job_runs_then_changes_proxy() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_seconds=(2.0, 6.0))
    path = f"/v3/{P}/instances/{INSTANCE_PROD}/proxy/{PROXY_SWITCHABLE}/connection-pool-type"

    async def job_status() -> dict[str, object]:
        job = _check(await _signed(client, "GET", f"/v3/{P}/jobs", [("id", job_id)], at=clock.t), "GET", JOBS, 200)
        assert isinstance(job["job"], dict)
        return job["job"]

    async with _client(sandbox) as client:
        job_id = str(_check(await _signed(client, "PUT", path, body=SESSION), "PUT", POOL_TYPE, 200)["job_id"])
        assert (await job_status())["status"] == "Pending"
        clock.t += 3
        running = await job_status()
        assert running["status"] == "Running" and running["process"] == "25%" and running["ended"] == ""
        assert sandbox.proxies[PROXY_SWITCHABLE].connection_pool_type == "CLOSED"
        clock.t += 3
        done = await job_status()
        assert done["status"] == "Completed" and done["process"] == "" and done["ended"] == "2025-09-04T08:00:06+0000"
        assert done["instance"] == {"id": INSTANCE_PROD, "name": "taurus-prod"}
        listed = await _signed(client, "GET", f"/v3/{P}/instances/{INSTANCE_PROD}/proxies", at=clock.t)
    assert _at(_check(listed, "GET", PROXIES, 200), "proxy_list", 0, "proxy", "connection_pool_type") == "SESSION"


async def test_set_pool_type_while_job_runs_is_409_and_every_put_is_a_new_job() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_seconds=(0.0, 5.0))
    path = f"/v3/{P}/instances/{INSTANCE_PROD}/proxy/{PROXY_SESSION}/connection-pool-type"
    async with _client(sandbox) as client:
        first = await _signed(client, "PUT", path, body=SESSION)
        conflict = await _signed(client, "PUT", path, body=SESSION)
        clock.t += 5
        again = await _signed(client, "PUT", path, body=SESSION, at=clock.t)
    assert _error_code(_check(conflict, "PUT", POOL_TYPE, 409)) == "DBS.200019"
    jobs = {_check(first, "PUT", POOL_TYPE, 200)["job_id"], _check(again, "PUT", POOL_TYPE, 200)["job_id"]}
    assert len(jobs) == 2 == len(sandbox.jobs)


async def test_job_is_not_found_until_visible() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_visible_after_s=3.0)
    path = f"/v3/{P}/instances/{INSTANCE_PROD}/proxy/{PROXY_SWITCHABLE}/connection-pool-type"
    async with _client(sandbox) as client:
        job_id = str(_check(await _signed(client, "PUT", path, body=SESSION), "PUT", POOL_TYPE, 200)["job_id"])
        hidden = await _signed(client, "GET", f"/v3/{P}/jobs", [("id", job_id)])
        clock.t += 3
        shown = await _signed(client, "GET", f"/v3/{P}/jobs", [("id", job_id)], at=clock.t)
        unknown = await _signed(client, "GET", f"/v3/{P}/jobs", [("id", "no-such-job")], at=clock.t)
    assert _error_code(_check(hidden, "GET", JOBS, 400)) == "DBS.200001"
    _check(shown, "GET", JOBS, 200)
    assert _error_code(_check(unknown, "GET", JOBS, 400)) == "DBS.200001"


@pytest.mark.parametrize(
    ("instance_id", "proxy_id", "body", "code"),
    [
        (INSTANCE_ANALYTICS, PROXY_OLD_KERNEL, SESSION, "DBS.05000001"),
        (INSTANCE_ANALYTICS, PROXY_FLAG_FALSE, SESSION, "DBS.200004"),
        (INSTANCE_PROD, "f" * 32 + "po01", SESSION, "DBS.201028"),
        (INSTANCE_PROD, PROXY_OLD_KERNEL, SESSION, "DBS.201028"),  # exists, but on another instance
        ("e" * 32 + "in07", PROXY_SWITCHABLE, SESSION, "DBS.201028"),
        ("a/b", PROXY_SWITCHABLE, SESSION, "DBS.201028"),  # %2F stays inside one segment
        (INSTANCE_PROD, PROXY_SWITCHABLE, b'{"connection_pool_type": "TRANSACTION"}', "DBS.200001"),
        (INSTANCE_PROD, PROXY_SWITCHABLE, b"{}", "DBS.200001"),
        (INSTANCE_PROD, PROXY_SWITCHABLE, b"not json", "DBS.200001"),
    ],
)
async def test_set_pool_type_refusals_are_400_and_start_no_job(
    instance_id: str, proxy_id: str, body: bytes, code: str
) -> None:
    sandbox = TaurusDBSandbox(clock=_Clock())
    path = f"/v3/{P}/instances/{instance_id.replace('/', '%2F')}/proxy/{proxy_id}/connection-pool-type"
    async with _client(sandbox) as client:
        response = await _signed(client, "PUT", path, body=body)
    result = _check(response, "PUT", POOL_TYPE, 400)
    assert result["error_code"] == code and not sandbox.jobs
    if code == "DBS.05000001":
        assert result["error_msg"] == "The kernel version is too early."
    if code == "DBS.200004":
        assert "switch_connection_pool_type_enabled is false" in str(result["error_msg"])


async def test_unknown_route_or_method_is_404_apigw_0101() -> None:
    async with _client(TaurusDBSandbox(clock=_Clock())) as client:
        unsigned = await client.get(f"/v3/{P}/databases")
        wrong_method = await _signed(client, "DELETE", f"/v3/{P}/instances")
        too_deep = await _signed(client, "GET", f"/v3/{P}/instances/{INSTANCE_PROD}/proxies/extra")
    for response, method in ((unsigned, "GET"), (wrong_method, "GET"), (too_deep, "GET")):
        assert _error_code(_check(response, method, INSTANCES, 404)) == "APIGW.0101"


@pytest.mark.parametrize(
    ("status", "code"), [(429, "APIG.0308"), (500, "DBS.05000000"), (503, "APIG.0202"), (504, "APIG.0203")]
)
async def test_injected_fault_is_provider_shaped(status: int, code: str) -> None:
    sandbox = TaurusDBSandbox(clock=_Clock())
    response = sandbox.error(status, retry_after=7 if status == 429 else None)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert response.headers.get("retry-after") == ("7" if status == 429 else None)
    assert "x-request-id" in response.headers
    body = json.loads(bytes(response.body))
    assert body["error_code"] == code
    schema = _resolved(_at(SPEC, "components", "schemas", "ErrorResponse"), SPEC)
    assert isinstance(schema, dict)
    jsonschema.validate(body, schema)


def test_endpoint_names_match_routes() -> None:
    sandbox = TaurusDBSandbox()
    assert sandbox.endpoint("GET", ["v3", P, "instances"]) == "list_instances"
    assert sandbox.endpoint("GET", ["v3", P, "instances", INSTANCE_PROD, "proxies"]) == "list_proxies"
    put = ["v3", P, "instances", INSTANCE_PROD, "proxy", PROXY_SWITCHABLE, "connection-pool-type"]
    assert sandbox.endpoint("PUT", put) == "set_pool_type"
    assert sandbox.endpoint("GET", ["v3", P, "jobs"]) == "get_job"
    assert sandbox.endpoint("POST", ["v3", P, "jobs"]) is None
    assert sandbox.endpoint("GET", ["v2", "databases"]) is None


def test_seed_ids_follow_documented_formats() -> None:
    sandbox = TaurusDBSandbox()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", SANDBOX_PROJECT_ID)
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}in07", i) for i in sandbox.instances)
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}po01", p) for p in sandbox.proxies)
    assert len({p.name for p in sandbox.proxies.values()}) == 4


async def test_reset_restores_seeds() -> None:
    clock = _Clock()
    sandbox = TaurusDBSandbox(clock=clock, job_seconds=(0.0, 0.0))
    path = f"/v3/{P}/instances/{INSTANCE_PROD}/proxy/{PROXY_SWITCHABLE}/connection-pool-type"
    async with _client(sandbox) as client:
        _check(await _signed(client, "PUT", path, body=SESSION), "PUT", POOL_TYPE, 200)
    sandbox.settle()
    assert sandbox.proxies[PROXY_SWITCHABLE].connection_pool_type == "SESSION"
    sandbox.reset()
    assert sandbox.proxies[PROXY_SWITCHABLE].connection_pool_type == "CLOSED" and not sandbox.jobs
