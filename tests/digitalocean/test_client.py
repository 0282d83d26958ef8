"""The DigitalOcean client alone: paths, error parsing, and what it reports when a create's answer is lost."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.http import Upstream
from poolpilot.server.kernel.redact import Redactor
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.kernel.state import OpenContext
from poolpilot.tools.digitalocean.client import DigitalOceanClient, open_client, parse_error
from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from tests.support import ManualClock, Sandbox

pytestmark = pytest.mark.anyio

POOL = {"name": "jobs", "mode": "session", "size": 5, "db": "defaultdb", "user": "doadmin"}


def _mock(handler: Callable[[httpx2.Request], httpx2.Response]) -> DigitalOceanClient:
    clock = ManualClock()
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="http://do.test")
    upstream = Upstream(
        provider="digitalocean",
        backend="live",
        client=http,
        parse_error=parse_error,
        hint=lambda info: None,
        sleep=clock.sleep,
        clock=clock,
    )
    return DigitalOceanClient(upstream, clock=clock)


async def _sandboxed(*faults: str) -> tuple[DigitalOceanClient, Sandbox]:
    clock = ManualClock()
    plan = FaultPlan()
    for rule in faults:
        plan.add(rule)
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=plan)
    ctx = OpenContext(
        settings=Settings(backend="sandbox"), redactor=Redactor(), sandbox=sandbox, clock=clock, sleep=clock.sleep
    )
    return await open_client(ctx), sandbox


async def test_path_segments_are_always_percent_encoded() -> None:
    seen: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.raw_path)
        return httpx2.Response(200, json={"pool": POOL})

    do = _mock(handler)
    await do.get_pool(PG_MAIN_ID, "a b/c%d?e#f")
    assert seen == [f"/v2/databases/{PG_MAIN_ID}/pools/a%20b%2Fc%25d%3Fe%23f".encode()]


async def test_put_sends_the_whole_pool_and_omits_only_an_inbound_user() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(request.content)
        return httpx2.Response(204)

    do = _mock(handler)
    await do.put_pool(PG_MAIN_ID, "p-1", mode="session", size=3, db="app", user="app")
    await do.put_pool(PG_MAIN_ID, "p-1", mode="session", size=3, db="app", user=None)
    assert bodies == [
        b'{"mode":"session","size":3,"db":"app","user":"app"}',
        b'{"mode":"session","size":3,"db":"app"}',
    ]


async def test_html_5xx_falls_back_to_the_status_text() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(502, html="<html><body>Cloudflare: bad gateway</body></html>")

    with pytest.raises(PoolpilotError) as caught:
        await _mock(handler).list_clusters()
    info = caught.value.info
    assert info.code == "upstream_error" and info.http_status == 502
    assert info.message == "DigitalOcean answered HTTP 502 Bad Gateway (no JSON body)"
    assert "Cloudflare" not in info.text()


async def test_do_error_body_is_parsed_into_the_model() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = {"id": "forbidden", "message": "You do not have access.", "request_id": "r-1"}
        return httpx2.Response(403, json=body)

    with pytest.raises(PoolpilotError) as caught:
        await _mock(handler).list_users(PG_MAIN_ID)
    info = caught.value.info
    assert (info.code, info.provider_code, info.request_id) == ("forbidden", "forbidden", "r-1")
    assert info.message == "You do not have access."


async def test_create_found_with_other_attributes_is_a_conflict() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(500, json={"id": "server_error", "message": "Unexpected server-side error"})
        return httpx2.Response(200, json={"pool": {**POOL, "size": 9, "mode": "transaction"}})

    with pytest.raises(PoolpilotError) as caught:
        await _mock(handler).add_pool(PG_SMALL_ID, name="jobs", mode="session", size=5, db="defaultdb", user="doadmin")
    info = caught.value.info
    assert info.code == "conflict"
    assert 'mode "transaction" (asked "session"), size 9 (asked 5)' in info.message


async def test_name_taken_right_after_a_failed_create_is_read_back() -> None:
    do, sandbox = await _sandboxed("applied-500@databases_add_connectionPool#1", "500@databases_get_connectionPool#4")
    args = {"name": "jobs", "mode": "session", "size": 5, "db": "defaultdb", "user": "doadmin"}
    with pytest.raises(PoolpilotError) as caught:
        await do.add_pool(PG_SMALL_ID, **args)  # type: ignore[arg-type]
    assert "unknown" in caught.value.info.message
    # The caller tries again: DigitalOcean says the name is taken (422); reading back shows it is ours.
    created = await do.add_pool(PG_SMALL_ID, **args)  # type: ignore[arg-type]
    assert created.value.size == 5 and created.note is not None and "HTTP 422" in created.note
    assert sandbox.digitalocean.calls.count(("POST", "databases_add_connectionPool")) == 2
    await do.aclose()


async def test_name_taken_without_an_earlier_failure_is_a_conflict() -> None:
    do, _ = await _sandboxed()
    with pytest.raises(PoolpilotError) as caught:
        await do.add_pool(PG_SMALL_ID, name="web", mode="session", size=1, db="defaultdb", user=None)
    assert caught.value.info.code == "conflict" and caught.value.info.http_status == 422
    assert caught.value.info.message == f'pool "web" already exists on cluster {PG_SMALL_ID}'
    await do.aclose()


async def test_delete_of_a_missing_pool_is_not_found_on_the_first_attempt() -> None:
    do, _ = await _sandboxed()
    with pytest.raises(PoolpilotError) as caught:
        await do.delete_pool(PG_SMALL_ID, "ghost")
    assert caught.value.info.code == "not_found" and '"ghost"' in caught.value.info.message
    assert await do.delete_pool(PG_SMALL_ID, "web") is None
    await do.aclose()


async def test_get_user_reads_one_user() -> None:
    do, _ = await _sandboxed()
    user = await do.get_user(PG_MAIN_ID, "reporter")
    assert (user.name, user.role) == ("reporter", "normal")
    await do.aclose()
