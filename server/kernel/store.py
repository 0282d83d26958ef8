"""Where the state lives that must be the same on every replica: used confirmation-token nonces and the per-target
mutation lock (issue 19).

Without `POOLPILOT_STATE_URL` both stay in this process (`LocalStore`, the behaviour of a single server). With
`redis://…` or `rediss://…` they live in Redis (`RedisStore`, redis-py's asyncio client, extra `[redis]`): a nonce
is claimed with `SET NX PX` for the token's remaining lifetime, so a token redeemed on one replica is refused on
every other, and the lock is a lease (`SET NX PX` holding a fencing number) renewed while held and released by a
script only by its owner. Keys are `poolpilot:<id>:…`, `<id>` derived from POOLPILOT_CONFIRM_SECRET, so two
deployments sharing one Redis cannot meet. When Redis cannot be reached, guarded calls fail closed with
`state_store_unavailable`; reads never touch the store.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import anyio

from poolpilot.server.kernel.config import ConfigError, Settings
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.keys import derive_key
from poolpilot.server.kernel.locks import Distributed

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LocalStore", "RedisStore", "StateStore", "StoreProbe", "open_store", "probe_store", "unavailable"]

NAMESPACE_LABEL = b"poolpilot/state-namespace/v1"
# A mutation holds its target from the last re-read until the provider answered: seconds. The lease is renewed every
# third of it while held, so it only runs out when the holder died or lost Redis; the next writer then waits <= it.
LEASE_S = 30.0
LOCK_WAIT_S = 60.0  # longer than one upstream call with its retries; then the waiting call gets `conflict`
STORE_TIMEOUT_S = 2.0

# Take the lease and number it in one step, so fencing numbers grow in the order the lease was taken.
_TAKE = (
    "if redis.call('exists', KEYS[1]) == 1 then return 0 end "
    "local fence = redis.call('incr', KEYS[2]) redis.call('set', KEYS[1], fence, 'PX', ARGV[1]) return fence"
)
# Extend / delete the lease only while it still carries our fencing number: a holder whose lease ran out (and was
# taken by another replica) must not extend or release the new owner's lock.
_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call({}) else return 0 end"
_RENEW = _IF_OWNER.format("'pexpire', KEYS[1], ARGV[2]")
_RELEASE = _IF_OWNER.format("'del', KEYS[1]")

log = logging.getLogger("poolpilot.store")
T = TypeVar("T")


def unavailable() -> PoolpilotError:
    return PoolpilotError(
        ErrorInfo(
            code="state_store_unavailable",
            message="the shared state store cannot be reached, so no change is confirmed safely; nothing was changed",
            hint="Read tools still work. Ask the operator to check the Redis named by POOLPILOT_STATE_URL "
            "(poolpilot doctor tests it), then try again.",
        )
    )


class StateStore(Protocol):
    lease: Distributed | None  # None: the in-process TargetLocks are the whole story

    async def ready(self) -> None:
        """Raise `state_store_unavailable` unless the store answers (every guarded decision needs it)."""

    async def claim(self, nonce: str, ttl_s: float) -> bool:
        """Mark `nonce` used for `ttl_s` seconds; False when it already was."""

    async def used(self, nonce: str) -> bool: ...

    async def aclose(self) -> None: ...


class LocalStore:
    """One process: nonces in a dict until they expire (the token's own expiry ends them anyway)."""

    lease: Distributed | None = None

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()  # `poolpilot call` answers questions from a worker thread

    async def ready(self) -> None:
        return None

    async def claim(self, nonce: str, ttl_s: float) -> bool:
        now = self._clock()
        with self._lock:
            self._used = {n: until for n, until in self._used.items() if until >= now}
            if nonce in self._used:
                return False
            self._used[nonce] = now + ttl_s
            return True

    async def used(self, nonce: str) -> bool:
        with self._lock:
            return self._used.get(nonce, float("-inf")) >= self._clock()

    async def aclose(self) -> None:
        return None


class RedisStore:
    """Nonces and leases in Redis. Not reaching it within STORE_TIMEOUT_S is `state_store_unavailable`."""

    def __init__(self, client: Redis, namespace: str) -> None:
        from redis.exceptions import RedisError

        self._redis = client
        self._prefix = f"poolpilot:{namespace}:"
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self.lease: Distributed | None = self

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            with anyio.fail_after(STORE_TIMEOUT_S):
                return await pending
        except self._errors as exc:
            log.warning("state store unreachable (%s)", type(exc).__name__)
            raise unavailable() from None

    async def ready(self) -> None:
        await self._call(self._redis.ping())

    async def claim(self, nonce: str, ttl_s: float) -> bool:
        ms = max(1, int(ttl_s * 1000))
        done = self._redis.set(self._prefix + "nonce:" + nonce, b"1", nx=True, px=ms)
        return bool(await self._call(cast("Awaitable[bool | None]", done)))

    async def used(self, nonce: str) -> bool:
        found = self._redis.exists(self._prefix + "nonce:" + nonce)
        return bool(await self._call(found))

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[object]:
        """The lease on `key`, yielding its fencing number (strictly increasing per key)."""
        name = self._prefix + "lock:" + key
        lease_ms = int(LEASE_S * 1000)
        try:
            with anyio.fail_after(LOCK_WAIT_S):
                while not (fence := await self._take(name, self._prefix + "fence:" + key, lease_ms)):  # noqa: ASYNC110
                    await anyio.sleep(0.05)  # another replica holds it; Redis has no blocking SET NX to wait on
        except TimeoutError:
            raise PoolpilotError(
                ErrorInfo(
                    code="conflict",
                    message="another call is still changing this target; nothing was changed",
                    hint="Wait a minute, read the target again, and retry if the change is still needed.",
                )
            ) from None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, name, fence, lease_ms)
                try:
                    yield int(fence)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(STORE_TIMEOUT_S):
                try:
                    await self._redis.eval(_RELEASE, 1, name, fence)
                except self._errors as exc:  # the lease then runs out by itself
                    log.warning("could not release a target lock (%s); it expires by itself", type(exc).__name__)

    async def _take(self, name: str, counter: str, lease_ms: int) -> str:
        """The fencing number now holding the lease, or "" when another holder has it."""
        taken = await self._call(cast("Awaitable[int]", self._redis.eval(_TAKE, 2, name, counter, lease_ms)))
        return str(taken) if taken else ""

    async def _renew(self, name: str, fence: str, lease_ms: int) -> None:
        while True:
            await anyio.sleep(LEASE_S / 3)
            try:
                kept = await self._call(self._redis.eval(_RENEW, 1, name, fence, lease_ms))
            except PoolpilotError:
                continue  # Redis away for a moment: the lease still has two thirds left
            if not kept:
                log.error("a target lock's lease ran out while held; another replica may act on the same target")
                return

    async def aclose(self) -> None:
        await self._redis.aclose()


def _client(url: str) -> Redis:
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ConfigError("POOLPILOT_STATE_URL", "needs redis-py", "pip install 'poolpilot[redis]'") from None
    # One quick retry reconnects a pooled connection that a Redis restart closed; no backoff, so an outage is
    # reported within STORE_TIMEOUT_S instead of after redis-py's default exponential retries.
    return Redis.from_url(
        url,
        socket_timeout=STORE_TIMEOUT_S,
        socket_connect_timeout=STORE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
    )


def open_store(settings: Settings, clock: Callable[[], float] = time.time) -> StateStore:
    if settings.state_url is None:
        return LocalStore(clock)
    if settings.confirm_secret is None:  # config refuses this; kept for Settings built in code
        raise ConfigError("POOLPILOT_STATE_URL", "needs POOLPILOT_CONFIRM_SECRET", "set one secret on every replica")

    namespace = derive_key(settings.confirm_secret, NAMESPACE_LABEL).hex()[:16]
    return RedisStore(_client(settings.state_url), namespace)


_PROBE_FIX = "start that Redis or fix POOLPILOT_STATE_URL; until then destructive calls are refused"


class StoreProbe(NamedTuple):
    ok: bool
    detail: str
    fix: str | None = _PROBE_FIX


async def probe_store(url: str | None, timeout_s: float) -> StoreProbe:
    """For `poolpilot doctor`: reachable, server version, one set/get/delete round trip. Never shows the password."""
    if url is None:
        return StoreProbe(True, "in this process (one replica; set POOLPILOT_STATE_URL for several)", None)
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"
    try:
        client = _client(url)
    except ConfigError as exc:
        return StoreProbe(False, str(exc).replace(". Fix: ", ": "))
    key = f"poolpilot:doctor:{secrets.token_hex(8)}"
    try:
        with anyio.fail_after(timeout_s):
            info = await cast("Awaitable[dict[str, object]]", client.info("server"))
            started = time.monotonic()
            await cast("Awaitable[bool]", client.set(key, b"ok", px=10_000))
            echoed = await cast("Awaitable[bytes | None]", client.get(key))
            await client.delete(key)
            elapsed = (time.monotonic() - started) * 1000
    except TimeoutError:
        return StoreProbe(False, f"{where} did not answer within {timeout_s:g} s")
    except Exception as exc:  # any failure is the finding; its type names it without echoing the URL
        return StoreProbe(False, f"{where}: {type(exc).__name__}")
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()
    if echoed != b"ok":
        return StoreProbe(False, f"{where} did not return what was written")
    return StoreProbe(True, f"Redis {info.get('redis_version')} at {where}; set/get/delete in {elapsed:.1f} ms", None)
