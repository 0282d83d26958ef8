"""The shared state store against a real Redis: nonces claimed once across stores, namespaces apart, the lease lock's
exclusion and owner-only release, and failing closed when Redis is gone (in-process apps sharing one sandbox)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from poolpilot.server.kernel.config import ConfigError, Settings, load_settings
from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.sandbox import FaultPlan
from poolpilot.server.kernel.store import LocalStore, RedisStore, StateStore, open_store, probe_store
from poolpilot.server.kernel.tokens import TokenSigner
from poolpilot.server.shell.doctor import diagnose
from tests.store_support import SECRET, RedisServer, redis_server
from tests.support import ManualClock, Sandbox, error_model, free_port, make_app, ok_data, open_client

PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"
ARGS = {"cluster_id": "c", "pool_name": "web"}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def _store(redis: RedisServer, secret: str = SECRET) -> StateStore:
    return open_store(Settings(state_url=redis.url, confirm_secret=secret.encode()))


async def test_redis_store_claims_a_nonce_once_across_stores(redis: RedisServer) -> None:
    one, two = _store(redis), _store(redis)
    nonce = secrets.token_hex(8)
    results = []

    async def claim(store: StateStore) -> None:
        results.append(await store.claim(nonce, 60))

    async with anyio.create_task_group() as tg:  # two replicas at once: exactly one wins
        tg.start_soon(claim, one)
        tg.start_soon(claim, two)
    assert sorted(results) == [False, True]
    assert await one.used(nonce) and await two.used(nonce)
    await one.aclose()
    await two.aclose()


async def test_redis_store_keeps_deployments_with_other_secrets_apart(redis: RedisServer) -> None:
    ours, theirs = _store(redis), _store(redis, "another-deployment-secret-0123456789")
    nonce = secrets.token_hex(8)
    assert await ours.claim(nonce, 60)
    assert await theirs.claim(nonce, 60)  # the same nonce in another namespace
    await ours.aclose()
    await theirs.aclose()


async def test_token_redeemed_through_one_signer_is_refused_by_another_sharing_the_store(redis: RedisServer) -> None:
    clock = ManualClock()
    first = TokenSigner(SECRET.encode(), 300, clock, _store(redis))
    second = TokenSigner(SECRET.encode(), 300, clock, _store(redis))
    token, _ = first.issue("t", ARGS, "f1")
    with pytest.raises(PoolpilotError) as changed:
        await second.redeem(token, "t", ARGS, "f2")
    assert "target changed" in changed.value.info.message  # a refusal consumes nothing
    await first.redeem(token, "t", ARGS, "f1")
    for signer, target in ((second, "f1"), (second, "f2"), (first, "f1")):
        with pytest.raises(PoolpilotError) as used:
            await signer.redeem(token, "t", ARGS, target)
        assert "already used" in used.value.info.message


async def test_lease_lock_lets_one_holder_in_at_a_time(redis: RedisServer) -> None:
    one, two = _store(redis), _store(redis)
    assert one.lease is not None and two.lease is not None
    order: list[str] = []
    first_in = anyio.Event()

    async def holder(store: StateStore, name: str, signal: anyio.Event | None) -> None:
        assert store.lease is not None
        async with store.lease.hold("digitalocean:pool:c/web"):
            order.append(f"{name} in")
            if signal is not None:
                signal.set()
            await anyio.lowlevel.checkpoint()
            order.append(f"{name} out")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder, one, "one", first_in)
            await first_in.wait()
            tg.start_soon(holder, two, "two", None)
    assert order == ["one in", "one out", "two in", "two out"]


async def test_lease_lock_released_late_does_not_free_the_next_owners_lock(redis: RedisServer) -> None:
    one, two = _store(redis), _store(redis)
    assert isinstance(one, RedisStore) and isinstance(two, RedisStore)
    raw = Redis.from_url(redis.url)
    key = f"pool-{secrets.token_hex(4)}"
    with anyio.fail_after(10):
        async with one.hold(key) as first_fence:
            (lock_name,) = await raw.keys(f"poolpilot:*:lock:{key}")
            await raw.delete(lock_name)  # as if the first holder's lease ran out while it was stalled
            async with two.hold(key) as second_fence:
                assert isinstance(first_fence, int) and isinstance(second_fence, int)
                assert second_fence > first_fence  # fencing numbers only grow
                inner_value = await raw.get(lock_name)
        # the first holder left after the second took over: its release must not have deleted the lock...
        # ...which the second holder then released itself
        assert inner_value == str(second_fence).encode()
        assert await raw.get(lock_name) is None
    await raw.aclose()


async def test_local_store_claims_once_and_has_no_lease() -> None:
    store = LocalStore(ManualClock())
    assert store.lease is None
    assert await store.claim("n", 10) and not await store.claim("n", 10)


async def test_store_probe_reports_version_and_round_trip_or_the_failure(redis: RedisServer) -> None:
    found = await probe_store(f"redis://:hunter2-secret@127.0.0.1:{redis.port}/0", 5)
    assert found.ok and "Redis 7" in found.detail and "set/get/delete" in found.detail
    assert "hunter2" not in found.detail
    gone = await probe_store("redis://:hunter2-secret@127.0.0.1:1/0", 5)
    assert not gone.ok and "hunter2" not in gone.detail and gone.fix is not None


def _replica(audit: Path, sandbox: Sandbox, clock: ManualClock, url: str) -> Any:
    app, _, _ = make_app(audit, sandbox=sandbox, clock=clock, state_url=url, confirm_secret=SECRET.encode())
    return app


async def test_shared_store_refuses_a_replay_on_another_replica_after_an_identical_recreate(
    redis: RedisServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=FaultPlan())
    one = _replica(tmp_path / "one.jsonl", sandbox, clock, redis.url)
    two = _replica(tmp_path / "two.jsonl", sandbox, clock, redis.url)
    args = {"cluster_id": PG_SMALL, "pool_name": "web"}
    async with open_client(one) as a, open_client(two) as b:
        before = ok_data(await a.call_tool("digitalocean_get_pool", args))
        token = ok_data(await a.call_tool("digitalocean_delete_pool", args))["confirm_token"]
        assert ok_data(await a.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))["executed"]
        fields = {k: before[k] for k in ("mode", "size", "db", "user")}
        ok_data(await b.call_tool("digitalocean_create_pool", {**args, **fields}))  # identical again
        replay = error_model(await b.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))
    assert replay["code"] == "confirmation_invalid" and "already used" in replay["message"]


async def test_store_outage_refuses_destructive_calls_keeps_reads_and_recovers(tmp_path: Path) -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock, sleep=clock.sleep, faults=FaultPlan())
    args = {"cluster_id": PG_SMALL, "pool_name": "web"}
    with redis_server(tmp_path) as server:
        app = _replica(tmp_path / "audit.jsonl", sandbox, clock, server.url)
        async with open_client(app) as client:
            token = ok_data(await client.call_tool("digitalocean_delete_pool", args))["confirm_token"]
            server.stop()
            refused = error_model(await client.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))
            assert refused["code"] == "state_store_unavailable"
            assert "POOLPILOT_STATE_URL" in refused["hint"] and "nothing was changed" in refused["message"]
            assert error_model(await client.call_tool("digitalocean_delete_pool", args))["code"] == refused["code"]
            assert ok_data(await client.call_tool("digitalocean_get_pool", args))["name"] == "web"  # reads work
            server.start()
            done = ok_data(await client.call_tool("digitalocean_delete_pool", {**args, "confirm_token": token}))
            assert done["executed"] is True


def test_state_url_must_be_redis_needs_the_secret_and_its_password_is_redacted() -> None:
    secret = {"POOLPILOT_CONFIRM_SECRET": SECRET}
    with pytest.raises(ConfigError) as scheme:
        load_settings({}, {**secret, "POOLPILOT_STATE_URL": "http://user:pw-0123456789@cache:6379"})
    assert "POOLPILOT_STATE_URL" in str(scheme.value) and "pw-0123456789" not in str(scheme.value)
    with pytest.raises(ConfigError) as no_secret:
        load_settings({}, {"POOLPILOT_STATE_URL": "redis://cache:6379/0"})
    assert "POOLPILOT_CONFIRM_SECRET" in str(no_secret.value)
    settings = load_settings({}, {**secret, "POOLPILOT_STATE_URL": "rediss://:pw-0123456789@cache:6380/1"})
    assert "pw-0123456789" in settings.secrets()  # the redactor takes every operator secret from here


async def test_doctor_checks_the_store_and_fails_naming_the_variable_when_it_is_down(
    redis: RedisServer, tmp_path: Path
) -> None:
    env = {"POOLPILOT_CONFIRM_SECRET": SECRET, "POOLPILOT_AUDIT_LOG": str(tmp_path / "a.jsonl")}
    up = await diagnose({}, {**env, "POOLPILOT_STATE_URL": redis.url}, timeout_s=5)
    (line,) = [c for c in up.checks if c.name == "state store"]
    assert line.status == "ok" and "Redis 7" in line.detail
    assert up.settings["state_url"].value == "set"  # the URL may hold a password: never shown
    down = await diagnose({}, {**env, "POOLPILOT_STATE_URL": f"redis://127.0.0.1:{free_port()}/0"}, timeout_s=5)
    (line,) = [c for c in down.checks if c.name == "state store"]
    assert line.status == "fail" and line.fix is not None and "POOLPILOT_STATE_URL" in line.fix and not down.ok
