"""Three real `serve --transport streamable-http --stateless` replicas behind a round-robin balancer, sharing
POOLPILOT_CONFIRM_SECRET and one real Redis (POOLPILOT_STATE_URL), over one sandbox on a port (issue 19).

Shown: a token used on replica 1 is refused on replicas 2 and 3 even after the target was recreated identically;
two concurrent redemptions on two replicas execute exactly once; with Redis stopped, destructive calls are refused
(`state_store_unavailable`, nothing sent) while reads work, and once Redis is back guarded calls work again.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import SocketAttribute, SocketStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.store_support import SECRET, RedisServer, redis_server
from tests.support import Sandbox, error_model, free_port, ok_data, served

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
PG_MAIN = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"


@dataclass
class Replicas:
    ports: list[int]
    audits: list[Path]
    redis: RedisServer


def _start(port: int, audit: Path, sandbox_url: str, redis_url: str, err: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_", "POOLPILOT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        POOLPILOT_AUDIT_LOG=str(audit),
        POOLPILOT_CONFIRM_SECRET=SECRET,
        POOLPILOT_STATE_URL=redis_url,
        POOLPILOT_DIGITALOCEAN_URL=sandbox_url,
        DIGITALOCEAN_TOKEN="replica-test-token",
    )
    args = ["serve", "--transport", "streamable-http", "--stateless", "--port", str(port), "--toolsets", "digitalocean"]
    with err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "poolpilot.server", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    with redis_server(tmp) as redis, served(Sandbox()) as sandbox_url:
        ports = [free_port() for _ in range(3)]
        audits = [tmp / f"audit-{n}.jsonl" for n in range(3)]
        processes = [
            _start(port, audit, sandbox_url, redis.url, tmp / f"stderr-{n}.txt")
            for n, (port, audit) in enumerate(zip(ports, audits, strict=True))
        ]
        try:
            deadline = time.monotonic() + 30
            for n, (port, process) in enumerate(zip(ports, processes, strict=True)):
                while True:  # bounded readiness polling of each replica's port
                    assert process.poll() is None, (tmp / f"stderr-{n}.txt").read_text()
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "a replica did not listen in time"
                        time.sleep(0.05)
            yield Replicas(ports, audits, redis)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


async def _pipe(source: SocketStream, sink: SocketStream) -> None:
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
        async for chunk in source:
            await sink.send(chunk)
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await sink.send_eof()


@asynccontextmanager
async def balancer(ports: list[int]) -> AsyncIterator[int]:
    """A TCP round-robin balancer: each new connection goes to the next replica."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    turn = itertools.cycle(ports)

    async def handle(client: SocketStream) -> None:
        upstream = await anyio.connect_tcp("127.0.0.1", next(turn))
        async with client, upstream, anyio.create_task_group() as tg:
            tg.start_soon(_pipe, client, upstream)
            tg.start_soon(_pipe, upstream, client)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield listener.extra(SocketAttribute.local_port)
        tg.cancel_scope.cancel()


@asynccontextmanager
async def clients(ports: list[int]) -> AsyncIterator[list[Client]]:
    """One MCP client per port; no keep-alive, so every request through the balancer may reach another replica."""
    async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_keepalive_connections=0)) as http:
        opened = [Client(streamable_http_client(f"http://127.0.0.1:{p}/mcp", http_client=http)) for p in ports]
        async with opened[0] as first:
            if len(opened) == 1:
                yield [first]
                return
            async with opened[1] as second, opened[2] as third:
                yield [first, second, third]


def _executed(audit: Path, tool: str) -> int:
    lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    return sum(1 for r in lines if r.get("tool") == tool and r.get("outcome") == "executed")


async def test_token_used_on_one_replica_is_refused_on_the_others_after_an_identical_recreate(
    replicas: Replicas,
) -> None:
    args = {"cluster_id": PG_SMALL, "pool_name": "web"}
    with anyio.fail_after(30):
        async with balancer(replicas.ports) as front, clients([front]) as (lb,), clients(replicas.ports) as (a, b, c):
            before = ok_data(await lb.call_tool("digitalocean_get_pool", args))
            token = ok_data(await lb.call_tool("digitalocean_delete_pool", args))["confirm_token"]
            assert ok_data(await a.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))["executed"]
            fields = {k: before[k] for k in ("mode", "size", "db", "user")}
            ok_data(await b.call_tool("digitalocean_create_pool", {**args, **fields}))  # recreated identically
            assert ok_data(await c.call_tool("digitalocean_get_pool", args)) == before
            for replay in (b, c, lb, lb, lb):  # replicas 2 and 3, then each replica again through the balancer
                refused = error_model(
                    await replay.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token})
                )
                assert refused["code"] == "confirmation_invalid" and "already used" in refused["message"]
            assert ok_data(await lb.call_tool("digitalocean_get_pool", args)) == before


async def test_two_concurrent_redemptions_on_two_replicas_execute_exactly_once(replicas: Replicas) -> None:
    args: dict[str, Any] = {"cluster_id": PG_MAIN, "pool_name": "app-tx"}
    with anyio.fail_after(30):
        async with clients(replicas.ports) as (a, b, _):
            size = ok_data(await a.call_tool("digitalocean_get_pool", args))["size"]
            change = {**args, "size": size + 1}
            token = ok_data(await b.call_tool("digitalocean_update_pool", change))["confirm_token"]
            results: list[dict[str, Any]] = []

            async def redeem(client: Client) -> None:
                result = await client.call_tool("digitalocean_update_pool", {**change, "confirm_token": token})
                results.append(ok_data(result) if not result.is_error else error_model(result))

            async with anyio.create_task_group() as tg:
                tg.start_soon(redeem, a)
                tg.start_soon(redeem, b)
    assert sorted(bool(r.get("executed")) for r in results) == [False, True]
    assert next(r for r in results if not r.get("executed"))["code"] == "confirmation_invalid"
    assert sum(_executed(audit, "digitalocean_update_pool") for audit in replicas.audits) == 1


async def test_redis_outage_refuses_destructive_calls_keeps_reads_and_recovers(replicas: Replicas) -> None:
    args = {"cluster_id": PG_MAIN, "pool_name": "reporting"}
    with anyio.fail_after(30):
        async with balancer(replicas.ports) as front, clients([front]) as (lb,), clients(replicas.ports) as each:
            token = ok_data(await lb.call_tool("digitalocean_delete_pool", args))["confirm_token"]
            replicas.redis.stop()
            try:
                for client in each:
                    refused = error_model(
                        await client.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token})
                    )
                    assert refused["code"] == "state_store_unavailable" and "POOLPILOT_STATE_URL" in refused["hint"]
                    assert ok_data(await client.call_tool("digitalocean_get_pool", args))["name"] == "reporting"
                    listed = ok_data(await client.call_tool("digitalocean_list_pools", {"cluster_id": PG_MAIN}))
                    assert "reporting" in {row["name"] for row in listed["rows"]}  # nothing was sent
            finally:
                replicas.redis.start()
            done = ok_data(await lb.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))
            assert done["executed"] is True
            again = ok_data(
                await lb.call_tool(
                    "digitalocean_update_pool", {"cluster_id": PG_MAIN, "pool_name": "app-tx", "size": 3}
                )
            )
            assert again["confirmation_required"] is True
