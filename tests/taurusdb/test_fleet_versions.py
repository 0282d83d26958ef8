"""pools_overview's TaurusDB rows: the kernel versions the last overview had to read are read again beside the proxy
list (not after it), every version still read during the overview that shows it; what the list no longer confirms
is ignored, what it newly names is read after it, and a failing list still ends as that instance's error entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from starlette.requests import Request
from starlette.responses import Response

from poolpilot.tools.taurusdb.sandbox import TaurusDBSandbox
from poolpilot.tools.taurusdb.sandbox_seed import (
    INSTANCE_ANALYTICS,
    INSTANCE_PROD,
    PROXY_FLAG_FALSE,
    PROXY_OLD_KERNEL,
    PROXY_SESSION,
    PROXY_SWITCHABLE,
)
from tests.support import Sandbox, make_app, open_client

pytestmark = pytest.mark.anyio


async def _overview(client: Client) -> dict[str, Any]:
    with anyio.fail_after(10):
        result = await client.call_tool("pools_overview", {"provider": "taurusdb"})
    data: dict[str, Any] | None = result.structured_content
    assert not result.is_error and data is not None, result.content
    return data


def _switchable(data: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {row["pool"]: (row["mode"], row["switchable"]) for row in data["rows"]}


class _Log:
    """The TaurusDB fake's endpoints in the order they were asked, and a hold on one instance's proxy list."""

    def __init__(self, fake: TaurusDBSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str | None, str]] = []
        self.hold_list_until_version = False
        self.version_asked = anyio.Event()
        handle = fake.handle

        async def logged(request: Request, segments: list[str]) -> Response:
            endpoint = fake.endpoint(request.method, segments)
            self.seen.append((endpoint, "/".join(segments)))
            if endpoint == "get_proxy_version" and PROXY_OLD_KERNEL in segments:
                self.version_asked.set()
            if endpoint == "list_proxies" and INSTANCE_ANALYTICS in segments and self.hold_list_until_version:
                with anyio.fail_after(3):  # without the early read this never comes: the overview would fail
                    await self.version_asked.wait()
            return await handle(request, segments)

        monkeypatch.setattr(fake, "handle", logged)


async def test_a_remembered_version_is_read_beside_the_proxy_list(
    audit_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, sandbox, _ = make_app(audit_path)
    assert isinstance(sandbox, Sandbox)
    log = _Log(sandbox.taurusdb, monkeypatch)
    async with open_client(app) as client:
        first = await _overview(client)  # cold: the version is read after the list
        order = [endpoint for endpoint, path in log.seen if INSTANCE_ANALYTICS in path]
        assert order.index("list_proxies") < order.index("get_proxy_version")
        log.seen.clear()
        log.version_asked = anyio.Event()
        log.hold_list_until_version = True
        second = await _overview(client)  # the list answers only once the version read has been asked
    assert second["errors"] == [] and _switchable(second) == _switchable(first)
    assert _switchable(second)[PROXY_OLD_KERNEL] == ("CLOSED", False)  # its kernel is still too old: read again
    versions = [path for endpoint, path in log.seen if endpoint == "get_proxy_version"]
    assert len(versions) == 2  # the two CLOSED proxies that claim they can switch, each read once


async def test_what_the_list_no_longer_confirms_is_ignored_and_what_it_names_anew_is_read(audit_path: Path) -> None:
    app, sandbox, _ = make_app(audit_path)
    assert isinstance(sandbox, Sandbox)
    proxies = sandbox.taurusdb.proxies
    async with open_client(app) as client:
        first = _switchable(await _overview(client))
        assert first[PROXY_OLD_KERNEL] == ("CLOSED", False) and first[PROXY_SESSION] == ("SESSION", True)
        # Between the two overviews: the old-kernel proxy is switched (its early read still says "too old"), the
        # SESSION one goes back to CLOSED on an old kernel (not remembered: read after the list), and the
        # switchable one disappears (its early read fails and is dropped).
        proxies[PROXY_OLD_KERNEL].connection_pool_type = "SESSION"
        proxies[PROXY_SESSION].connection_pool_type = "CLOSED"
        proxies[PROXY_SESSION].version = "2.22.05.000"
        del proxies[PROXY_SWITCHABLE]
        second = await _overview(client)
    assert second["errors"] == []
    assert _switchable(second) == {
        PROXY_OLD_KERNEL: ("SESSION", True),  # the list's flag: a stale "too old" does not touch a SESSION row
        PROXY_SESSION: ("CLOSED", False),  # newly CLOSED with an old kernel: checked after the list
        PROXY_FLAG_FALSE: ("CLOSED", False),
    }


async def test_a_failing_proxy_list_is_that_instances_error_while_early_reads_are_in_flight(
    audit_path: Path,
) -> None:
    app, sandbox, _ = make_app(audit_path)
    assert isinstance(sandbox, Sandbox)
    async with open_client(app) as client:
        await _overview(client)
        sandbox.faults.add("500@list_proxies")
        data = await _overview(client)
    assert {error["location"] for error in data["errors"]} == {INSTANCE_ANALYTICS, INSTANCE_PROD}
    assert data["rows"] == []
