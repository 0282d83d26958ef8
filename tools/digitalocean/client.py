"""DigitalOcean's managed-database API: one async method per documented endpoint, over the kernel's `Upstream`.

Retries follow what each method can stand (NOTES.md, CLIENTS.md):
- GET, PUT (a full replacement) and DELETE are idempotent: `Upstream` retries them on 5xx and timeouts.
  A DELETE whose retry meets 404 was done by an earlier attempt, so it is reported as done.
- POST (create) is never resent blindly: users saw 5xx from creates that did happen (TF#925, TF#447), and the
  resend then fails with 422 "name is not available". After an uncertain failure (5xx, timeout, broken
  connection, or that 422 right after one) the client reads the object back by name and reports the truth:
  created as asked, not created, or present with other attributes (`conflict`). A create cancelled while its
  POST was out is remembered as uncertain too, so the next create of that object recognises it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit
from urllib.parse import quote as url_quote

import anyio
import httpx2
from pydantic import BaseModel

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.http import UPSTREAM_LIMITS, Upstream, live_transport
from poolpilot.server.kernel.state import OpenContext
from poolpilot.server.kernel.text import quote, shown
from poolpilot.tools.digitalocean.errors import hinter, listed, member, next_page, parse_error, read_body
from poolpilot.tools.digitalocean.models import ApiCluster, ApiDatabase, ApiPool, ApiUser
from poolpilot.tools.digitalocean.settings import of

__all__ = ["PROVIDER", "Created", "DigitalOceanClient", "open_client", "parse_error"]

PROVIDER = "digitalocean"
SANDBOX_BASE_URL = "http://sandbox.invalid"
SANDBOX_TOKEN = "sandbox"
# A create that failed uncertainly is remembered this long, so a later 422 "not available" is read back too.
_UNCERTAIN_CREATE_MEMORY_S = 900.0
_MAX_PAGES = 50

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Attempts made by the current call (per task, so concurrent tool calls do not mix): `Upstream` calls
# `prepare` once per attempt, which tells a DELETE whether a 404 came from a retry.
_attempts: ContextVar[list[int] | None] = ContextVar("digitalocean_attempts", default=None)


@dataclass(frozen=True)
class Created(Generic[T]):
    """The created object, and a note when it took reading back to know that it was created."""

    value: T
    note: str | None = None


def _seg(value: str) -> str:
    # quote() leaves "." alone, so the name rule (no "." or ".." name) is what keeps dot segments off the path;
    # Upstream refuses any path the URL library would still rewrite.
    return url_quote(value, safe="")


def _counting(request: httpx2.Request) -> None:
    counter = _attempts.get()
    if counter is not None:
        counter[0] += 1


def _uncertain(info: ErrorInfo) -> bool:
    """The create may have happened: a server error, a timeout or a broken connection."""
    return info.code in ("timeout", "connection_error") or (info.http_status or 0) >= 500


def _name_taken(info: ErrorInfo) -> bool:
    return info.http_status == 422 and "not available" in info.message.lower()


class DigitalOceanClient:
    """The 13 database endpoints poolpilot uses. Every failure is a `PoolpilotError` (server/errors.py)."""

    provider = PROVIDER

    def __init__(self, upstream: Upstream, *, clock: Callable[[], float] = time.time) -> None:
        self.upstream = upstream
        self.backend = upstream.backend
        self._clock = clock
        self._uncertain_creates: dict[tuple[str, str, str], float] = {}

    async def aclose(self) -> None:
        await self.upstream.aclose()

    # -- clusters ------------------------------------------------------------------------------------

    async def list_clusters(self, tag_name: str | None = None) -> list[ApiCluster]:
        params: list[tuple[str, str | int | float | bool | None]] | None = (
            [("tag_name", tag_name)] if tag_name else None
        )
        items = await self._list("/v2/databases", "databases", params)
        return [read_body(ApiCluster, item, "the cluster list") for item in items]

    async def get_cluster(self, cluster_id: str) -> ApiCluster:
        what = f"cluster {cluster_id}"
        response = await self._get(self._cluster_path(cluster_id), what, cluster_id=None)
        return read_body(ApiCluster, member(response, "database", what), what)

    # -- databases -----------------------------------------------------------------------------------

    async def list_databases(self, cluster_id: str) -> list[ApiDatabase]:
        items = await self._list(self._cluster_path(cluster_id, "dbs"), "dbs", None, cluster_id=cluster_id)
        return [read_body(ApiDatabase, item, f"the databases of cluster {cluster_id}") for item in items]

    async def get_database(self, cluster_id: str, name: str) -> ApiDatabase:
        what = f"database {quote(name)} on cluster {cluster_id}"
        response = await self._get(self._cluster_path(cluster_id, "dbs", name), what, cluster_id)
        return read_body(ApiDatabase, member(response, "db", what), what)

    async def add_database(self, cluster_id: str, name: str) -> Created[ApiDatabase]:
        return await self._create(("db", cluster_id, name), {"name": name}, ApiDatabase, lambda found: [])

    async def delete_database(self, cluster_id: str, name: str) -> str | None:
        return await self._delete(
            self._cluster_path(cluster_id, "dbs", name), f"database {quote(name)} on cluster {cluster_id}", cluster_id
        )

    # -- pools ---------------------------------------------------------------------------------------

    async def list_pools(self, cluster_id: str) -> list[ApiPool]:
        items = await self._list(self._cluster_path(cluster_id, "pools"), "pools", None, cluster_id=cluster_id)
        return [read_body(ApiPool, item, f"the pools of cluster {cluster_id}") for item in items]

    async def get_pool(self, cluster_id: str, name: str) -> ApiPool:
        what = f"pool {quote(name)} on cluster {cluster_id}"
        response = await self._get(self._cluster_path(cluster_id, "pools", name), what, cluster_id)
        return read_body(ApiPool, member(response, "pool", what), what)

    async def add_pool(
        self, cluster_id: str, *, name: str, mode: str, size: int, db: str, user: str | None
    ) -> Created[ApiPool]:
        body: dict[str, object] = {"name": name, "mode": mode, "size": size, "db": db}
        if user:
            body["user"] = user  # omitted: an inbound-user pool

        def differences(found: ApiPool) -> list[str]:
            wanted = {"mode": mode, "size": size, "db": db, "user": user or None}
            have = found.row().model_dump()
            return [
                f"{key} {shown(have[key])} (asked {shown(value)})"
                for key, value in wanted.items()
                if have[key] != value
            ]

        return await self._create(("pool", cluster_id, name), body, ApiPool, differences)

    async def put_pool(self, cluster_id: str, name: str, *, mode: str, size: int, db: str, user: str | None) -> None:
        """Replace the whole pool. The API has no patch: an omitted `user` makes it an inbound-user pool."""
        body: dict[str, object] = {"mode": mode, "size": size, "db": db}
        if user:
            body["user"] = user
        path = self._cluster_path(cluster_id, "pools", name)
        await self._named(
            self.upstream.request("PUT", path, json_body=body, idempotent=True, ok=(204,)),
            f"pool {quote(name)} on cluster {cluster_id}",
            cluster_id,
        )

    async def delete_pool(self, cluster_id: str, name: str) -> str | None:
        return await self._delete(
            self._cluster_path(cluster_id, "pools", name), f"pool {quote(name)} on cluster {cluster_id}", cluster_id
        )

    # -- users ---------------------------------------------------------------------------------------

    async def list_users(self, cluster_id: str) -> list[ApiUser]:
        items = await self._list(self._cluster_path(cluster_id, "users"), "users", None, cluster_id=cluster_id)
        return [read_body(ApiUser, item, f"the users of cluster {cluster_id}") for item in items]

    async def get_user(self, cluster_id: str, name: str) -> ApiUser:
        what = f"user {quote(name)} on cluster {cluster_id}"
        response = await self._get(self._cluster_path(cluster_id, "users", name), what, cluster_id)
        return read_body(ApiUser, member(response, "user", what), what)

    def had_uncertain_create(self, kind: str, cluster_id: str, name: str) -> bool:
        """Whether a create of this object failed without a clear answer recently (see the module docstring)."""
        at = self._uncertain_creates.get((kind, cluster_id, name))
        return at is not None and self._clock() - at <= _UNCERTAIN_CREATE_MEMORY_S

    # -- plumbing ------------------------------------------------------------------------------------

    @staticmethod
    def _cluster_path(cluster_id: str, *rest: str) -> str:
        return "/".join(["/v2/databases", _seg(cluster_id), *(_seg(part) for part in rest)])

    async def _get(self, path: str, what: str, cluster_id: str | None) -> httpx2.Response:
        return await self._named(self.upstream.request("GET", path), what, cluster_id)

    async def _named(self, call: Awaitable[httpx2.Response], what: str, cluster_id: str | None) -> httpx2.Response:
        """Run `call`; a 404 names the missing object (the cluster itself, when that is what is missing)."""
        try:
            return await call
        except PoolpilotError as exc:
            if exc.info.code != "not_found":
                raise
            raise await self._not_found(exc.info, what, cluster_id) from None

    async def _not_found(self, info: ErrorInfo, what: str, cluster_id: str | None) -> PoolpilotError:
        # DigitalOcean answers the same 404 for a missing cluster and a missing pool in it: one read tells.
        if cluster_id is not None:
            try:
                await self.upstream.request("GET", self._cluster_path(cluster_id))
            except PoolpilotError as probe:
                if probe.info.code == "not_found":
                    what, cluster_id = f"cluster {cluster_id}", None
        kind = what.split(" ", 1)[0]
        if cluster_id is None:
            hint = (
                "List clusters with digitalocean_list_clusters; pools live on the primary cluster, "
                "not on read replicas."
            )
        else:
            tool = {"pool": "pools", "database": "databases", "user": "users"}.get(kind, kind + "s")
            hint = f"List them with digitalocean_list_{tool}(cluster_id={cluster_id!r}) and use an exact name."
        return PoolpilotError(info.model_copy(update={"message": f"{what} was not found", "hint": hint}))

    async def _list(
        self,
        path: str,
        key: str,
        params: list[tuple[str, str | int | float | bool | None]] | None,
        *,
        cluster_id: str | None = None,
    ) -> list[object]:
        """One list; follows `links.pages.next` should DigitalOcean ever paginate these (NOTES.md §9)."""
        items: list[object] = []
        what = f"cluster {cluster_id}" if cluster_id else "the cluster list"
        for _ in range(_MAX_PAGES):
            response = await self._named(self.upstream.request("GET", path, params=params), what, None)
            found, body = listed(response, key, what)
            items.extend(found)
            following = next_page(body)
            if not isinstance(following, str):
                break
            parts = urlsplit(following)
            if not parts.path.endswith(urlsplit(path).path):
                break  # only ever follow the same collection
            params = list(parse_qsl(parts.query))
        return items

    async def _find(self, path: str, key: str, model: type[M]) -> M | None:
        try:
            response = await self.upstream.request("GET", path)
        except PoolpilotError as exc:
            if exc.info.code == "not_found":
                return None
            raise
        return read_body(model, member(response, key, path), path)

    async def _create(
        self, key: tuple[str, str, str], body: dict[str, object], model: type[M], differences: Callable[[M], list[str]]
    ) -> Created[M]:
        """POST once; after an uncertain failure, read the object back by name and report what is true."""
        kind, cluster_id, name = key
        root, collection = {"db": ("db", "dbs"), "user": ("user", "users")}.get(kind, ("pool", "pools"))
        path = self._cluster_path(cluster_id, collection)
        what = f"{'database' if kind == 'db' else kind} {quote(name)}"

        async def read_back() -> M | None:
            return await self._find(self._cluster_path(cluster_id, collection, name), root, model)

        try:
            response = await self._named(
                self.upstream.request("POST", path, json_body=body, ok=(201,)), f"cluster {cluster_id}", None
            )
        except anyio.get_cancelled_exc_class():
            # The call was cancelled with the POST out: it may have been created. Remembered as uncertain, the
            # model's next create of the same object is read back and reported as this one's, not a conflict.
            self._uncertain_creates[key] = self._clock()
            raise
        except PoolpilotError as exc:
            info = exc.info
            if not (_uncertain(info) or (_name_taken(info) and self.had_uncertain_create(*key))):
                if _name_taken(info):
                    raise PoolpilotError(
                        info.model_copy(
                            update={
                                "code": "conflict",
                                "message": f"{what} already exists on cluster {cluster_id}",
                                "hint": "Use another name, or read and update the existing one.",
                            }
                        )
                    ) from None
                raise
            self._uncertain_creates[key] = self._clock()
            created = await self._reconcile(info, what, read_back)
            if created is None:
                self._uncertain_creates.pop(key, None)
                raise PoolpilotError(
                    info.model_copy(
                        update={
                            "message": f"{info.message}; reading back shows no {what}: nothing was created",
                            "hint": "It is safe to call the tool again.",
                        }
                    )
                ) from None
            self._uncertain_creates.pop(key, None)
            diff = differences(created)
            if diff:
                raise PoolpilotError(
                    info.model_copy(
                        update={
                            "code": "conflict",
                            "message": (
                                f"the create failed ({info.message}), and {what} now exists with other "
                                "attributes: " + ", ".join(diff)
                            ),
                            "hint": "Someone else may have created it: read it, then update or delete it.",
                        }
                    )
                ) from None
            if _name_taken(info):
                return Created(
                    created, f"an earlier create reported a failure, but it did create {what} (HTTP 422 now)"
                )
            cause = f"HTTP {info.http_status}" if info.http_status else info.code.replace("_", " ")
            return Created(created, f"DigitalOcean answered {cause}, but reading back shows {what} was created.")
        self._uncertain_creates.pop(key, None)
        try:
            return Created(read_body(model, member(response, root, what), what))
        except PoolpilotError as exc:  # the 201 says it exists: else the model would create it again
            update = {"message": f"{exc.info.message}; HTTP 201: it was created", "hint": "Read it, do not recreate."}
            raise PoolpilotError(exc.info.model_copy(update=update)) from None

    async def _reconcile(self, info: ErrorInfo, what: str, read_back: Callable[[], Awaitable[T | None]]) -> T | None:
        try:
            return await read_back()
        except PoolpilotError as again:
            raise PoolpilotError(
                info.model_copy(
                    update={
                        "message": (
                            f"{info.message}; whether {what} was created is unknown "
                            f"(reading it back failed too: {again.info.code})"
                        ),
                        "hint": "Read it with a get tool before creating it again.",
                    }
                )
            ) from None

    async def _delete(self, path: str, what: str, cluster_id: str) -> str | None:
        """Delete; returns a note when a retried attempt found the object already gone."""
        counter = [0]
        token = _attempts.set(counter)
        try:
            await self.upstream.request("DELETE", path, idempotent=True, ok=(204,))
        except PoolpilotError as exc:
            if exc.info.code == "not_found" and counter[0] > 1:
                return f"an earlier attempt failed without an answer; the retry found {what.split(' on ')[0]} gone"
            if exc.info.code == "not_found":
                raise await self._not_found(exc.info, what, cluster_id) from None
            raise
        finally:
            _attempts.reset(token)
        return None


async def open_client(ctx: OpenContext) -> DigitalOceanClient:
    """The client for the configured backend: the in-process sandbox, or the live API (or a URL standing in)."""
    settings = ctx.settings
    backend = settings.provider_backend(PROVIDER)
    own = of(settings)
    timeout = httpx2.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    if backend == "sandbox":
        if ctx.sandbox is None:
            raise RuntimeError("the sandbox backend needs a Sandbox")
        base_url, token = SANDBOX_BASE_URL, SANDBOX_TOKEN
        transport: httpx2.AsyncBaseTransport | None = ctx.sandbox.transport()
    else:
        base_url, token, transport = own.url, own.token or "", live_transport()
        ctx.redactor.add(token)
    headers = {"Accept": "application/json", "User-Agent": "poolpilot"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    client = httpx2.AsyncClient(
        base_url=base_url, headers=headers, timeout=timeout, transport=transport, limits=UPSTREAM_LIMITS
    )
    upstream = Upstream(
        provider=PROVIDER,
        backend=backend,
        client=client,
        parse_error=parse_error,
        hint=hinter(own.token_var, backend, base_url),
        prepare=_counting,
        sleep=ctx.sleep,
        jitter=ctx.jitter,
        clock=ctx.clock,
    )
    return DigitalOceanClient(upstream, clock=ctx.clock)
