"""DigitalOcean database users: get one, create one (WRITE), delete one (DESTRUCTIVE, guarded).

A fixed-user pool logs in as a database user, so a user is created before such a pool and deleted after it.
DigitalOcean generates the password of a new user and returns it once in the 201; the result shows it only
when the operator allows secrets (`--allow-secrets`), like every password. Deleting a user that pools log in
as is refused, naming those pools: DigitalOcean would leave them orphaned (their clients cannot connect).
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, Plan, Preview, Safety
from poolpilot.server.kernel.state import ToolSpec, app_state
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.digitalocean import clusterapi
from poolpilot.tools.digitalocean.client import PROVIDER, DigitalOceanClient
from poolpilot.tools.digitalocean.cluster_models import User, UserCreated, UserDeletion
from poolpilot.tools.digitalocean.lookups import allow_secrets, client, page, require_databases, target
from poolpilot.tools.digitalocean.models import (
    PG_ENGINES,
    ApiCluster,
    ApiUser,
    ClusterId,
    Cursor,
    PageSize,
    UserList,
    UserName,
    UserRow,
)
from poolpilot.tools.digitalocean.plans import cluster_lock, conflict

__all__ = [
    "SPECS",
    "digitalocean_create_user",
    "digitalocean_delete_user",
    "digitalocean_get_user",
    "digitalocean_list_users",
]


def _replication(api: ApiUser) -> bool | None:
    flag = (api.settings or {}).get("pg_allow_replication")
    return flag if isinstance(flag, bool) else None


def _user(api: ApiUser, cluster_id: str, backend: str, allow: bool, pools: list[str] | None = None) -> User:
    return User(
        backend=backend,
        cluster_id=cluster_id,
        name=api.name,
        role=api.role,
        pg_allow_replication=_replication(api),
        password=(api.password or None) if allow else None,
        pools=pools,
    )


async def _pools_of(do: DigitalOceanClient, cluster: ApiCluster, name: str) -> list[str] | None:
    if cluster.engine not in PG_ENGINES:
        return None
    return sorted(p.name for p in await do.list_pools(cluster.id) if p.user == name)


@tool(Safety.READ, "List DO users")
async def digitalocean_list_users(
    ctx: Context, cluster_id: ClusterId, page_size: PageSize = 20, cursor: Cursor = None
) -> UserList:
    """List the database users of a cluster (names and roles; no passwords)."""
    do = client(ctx)
    users = await do.list_users(cluster_id)
    rows, next_cursor = page(users, page_size, cursor)
    return UserList(
        backend=do.backend,
        cluster_id=cluster_id,
        rows=[UserRow(name=u.name, role=u.role) for u in rows],
        total=len(users),
        next_cursor=next_cursor,
    )


@tool(Safety.READ, "Get DO user")
async def digitalocean_get_user(ctx: Context, cluster_id: ClusterId, user_name: UserName) -> User:
    """Get one database user: role, replication right and, on PostgreSQL, the pools that log in as it."""
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    api = await do.get_user(cluster_id, user_name)
    return _user(api, cluster_id, do.backend, allow_secrets(ctx), await _pools_of(do, cluster, api.name))


@tool(Safety.WRITE, "Create DO user", lock=cluster_lock)
async def digitalocean_create_user(
    ctx: Context,
    cluster_id: ClusterId,
    user_name: UserName,
    pg_allow_replication: Annotated[
        bool | None, Field(strict=True, description="PostgreSQL only: allow replication (default false)")
    ] = None,
) -> UserCreated:
    """Create a database user; DigitalOcean generates its password (shown only if the operator allows secrets)."""
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    if pg_allow_replication is not None and cluster.engine not in PG_ENGINES:
        raise validation_error(
            "pg_allow_replication",
            f"applies to PostgreSQL clusters only; {quote(cluster.name)} has engine {quote(cluster.engine)}",
            hint="Omit it for this cluster; nothing was sent.",
            provider=PROVIDER,
        )
    where = target("user", user_name, cluster)
    allow = allow_secrets(ctx)
    names = [u.name for u in cluster.users or []]
    if user_name in names:
        if do.had_uncertain_create("user", cluster_id, user_name):
            # The earlier attempt answered with an error but did create it (as TF#925 for pools).
            api = await do.get_user(cluster_id, user_name)
            note = "an earlier create reported a failure, but it did create this user"
            return UserCreated(
                backend=do.backend, target=where, user=_user(api, cluster_id, do.backend, allow), note=note
            )
        raise conflict(
            f"user {quote(user_name)} already exists on {quote(cluster.name)}; nothing was sent",
            "Use another name, or use the existing user (digitalocean_get_user).",
        )
    args = {"cluster_id": cluster_id, "user_name": user_name, "pg_allow_replication": pg_allow_replication}
    app_state(ctx).guard.start_write(tool="digitalocean_create_user", args=args, target=where, backend=do.backend)
    created = await clusterapi.add_user(do, cluster_id, user_name, replication=pg_allow_replication)
    user = _user(created.value, cluster_id, do.backend, allow)
    return UserCreated(backend=do.backend, target=where, user=user, note=created.note)


async def plan_delete_user(ctx: Context, cluster_id: ClusterId, user_name: UserName) -> Plan[ApiUser]:
    do = client(ctx)
    cluster = await do.get_cluster(cluster_id)
    require_databases(cluster)
    api = await do.get_user(cluster_id, user_name)  # a 404 names what is missing
    if api.role == "primary":
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=f"user {quote(user_name)} is the primary (admin) user of {quote(cluster.name)}; "
                "DigitalOcean keeps it for the life of the cluster, so nothing was sent",
                hint="Delete another user.",
                provider=PROVIDER,
            )
        )
    pools = await _pools_of(do, cluster, api.name) or []
    if pools:
        raise conflict(
            f"user {quote(user_name)} is the login of pools {', '.join(map(quote, pools))} on {quote(cluster.name)}; "
            "deleting it would leave them orphaned (their clients could not connect); nothing was sent",
            "Point those pools at another user (digitalocean_update_pool user=... or inbound_user=true) "
            "or delete them first.",
        )
    preview = Preview(
        action="delete user",
        target=target("user", user_name, cluster),
        changes=[Change(field="user", before=user_name, after=None)],
        impact=f"clients that log in as {quote(user_name)} are refused from now on; no pool uses it",
    )
    state = {"cluster": cluster.id, "user": api.name, "role": api.role, "replication": _replication(api)}
    return Plan(preview=preview, fingerprint=fingerprint(state), data=api)


@guarded(title="Delete DO user", plan=plan_delete_user, lock=cluster_lock)
async def digitalocean_delete_user(
    ctx: Context, cluster_id: ClusterId, user_name: UserName, g: Guarded[ApiUser]
) -> UserDeletion:
    """Delete a database user that no pool uses; asks for confirmation first."""
    do = client(ctx)
    fields = {**g.decision.result_fields(do.backend), "cluster_id": cluster_id, "name": user_name}
    if not g.decision.approved:
        return UserDeletion.model_validate(fields)
    async with g.commit():
        note = await clusterapi.delete_user(do, cluster_id, user_name)
    fields.update(executed=True, message=f"User {quote(user_name)} deleted" + (f" ({note})." if note else "."))
    return UserDeletion.model_validate({**fields, "deleted": True})


SPECS: tuple[ToolSpec, ...] = specs(
    digitalocean_list_users, digitalocean_get_user, digitalocean_create_user, digitalocean_delete_user
)
