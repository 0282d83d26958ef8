"""The providers' clients and the embedded sandbox open at the first tool call or resource read, not at start
(issue 23: cold start), once per lifespan however many first calls race."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from poolpilot.server.kernel.config import Settings
from poolpilot.server.kernel.provider import Provider
from poolpilot.server.shell.app import build_app
from poolpilot.server.shell.registry import faces
from tests.support import error_model, make_app, ok_data, open_client

pytestmark = pytest.mark.anyio


def _counting(opened: list[str]) -> list[Provider]:
    """The registered faces, each counting its client opens."""
    import dataclasses

    def counted(face: Provider) -> Provider:
        async def open_(ctx: Any) -> Any:
            opened.append(face.name)
            await anyio.sleep(0.01)  # a slow open: racing first calls must wait for it, not open again
            return await face.open(ctx)

        return dataclasses.replace(face, open=open_)

    return [counted(f) for f in faces()]


async def test_initialize_and_tools_list_open_no_client_and_build_no_sandbox(tmp_path: Path) -> None:
    opened: list[str] = []
    app = build_app(Settings(backend="sandbox", audit_log=str(tmp_path / "a.jsonl")), faces=_counting(opened))
    async with open_client(app) as client:
        assert (await client.list_tools()).tools
        assert opened == [] and app.state.sandbox is None and not app.state.clients
        await client.list_resources()
        assert opened == []


async def test_racing_first_calls_open_each_client_once_and_a_new_lifespan_opens_again(tmp_path: Path) -> None:
    opened: list[str] = []
    app = build_app(Settings(backend="sandbox", audit_log=str(tmp_path / "a.jsonl")), faces=_counting(opened))
    async with open_client(app, mode="legacy") as client:
        results: list[Any] = []

        async def call(tool: str) -> None:
            results.append(ok_data(await client.call_tool(tool, {})))

        async with anyio.create_task_group() as tg:
            for tool in ["digitalocean_list_clusters", "taurusdb_list_instances", "pools_overview"] * 5:
                tg.start_soon(call, tool)
        assert len(results) == 15
        assert sorted(opened) == ["digitalocean", "pools", "taurusdb"]
        sandbox = app.state.sandbox
        assert sandbox is not None
    assert not app.state.clients and not app.state.opened  # closed with the lifespan
    async with open_client(app, mode="legacy") as client:
        ok_data(await client.call_tool("digitalocean_list_clusters", {}))
    assert sorted(opened) == ["digitalocean", "digitalocean", "pools", "pools", "taurusdb", "taurusdb"]
    assert app.state.sandbox is sandbox  # the sandbox (its state) outlives a lifespan, as before


async def test_a_resource_read_opens_the_clients(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "a.jsonl")
    async with open_client(app) as client:
        assert not app.state.clients
        read = await client.read_resource("poolpilot://overview")
        assert read.contents and app.state.clients


async def test_a_client_that_fails_to_open_fails_the_call_and_is_tried_again(tmp_path: Path) -> None:
    import dataclasses

    attempts: list[int] = []

    def flaky(face: Provider) -> Provider:
        if face.name != "taurusdb":
            return face

        async def open_(ctx: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError("no route to the IAM endpoint")
            return await face.open(ctx)

        return dataclasses.replace(face, open=open_)

    app = build_app(Settings(backend="sandbox", audit_log=str(tmp_path / "a.jsonl")), faces=[flaky(f) for f in faces()])
    async with open_client(app, mode="legacy") as client:
        first = error_model(await client.call_tool("digitalocean_list_clusters", {}))
        assert first["code"] == "internal_error" and first["incident_id"]
        ok_data(await client.call_tool("taurusdb_list_instances", {}))
        ok_data(await client.call_tool("digitalocean_list_clusters", {}))
    assert len(attempts) == 2


def test_one_app_serves_two_event_loops_one_after_the_other(tmp_path: Path) -> None:
    """`poolpilot call` and the pools commands run an app per event loop; nothing of the first loop is kept."""
    app = build_app(Settings(backend="sandbox", audit_log=str(tmp_path / "a.jsonl")))

    async def once() -> None:
        async with open_client(app, mode="legacy") as client:
            ok_data(await client.call_tool("digitalocean_list_clusters", {}))

    anyio.run(once)
    anyio.run(once)
