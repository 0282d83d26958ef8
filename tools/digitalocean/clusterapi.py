"""The cluster-level endpoints of DigitalOcean's database API, over the same client (client.py is at its size
limit): add and delete a user, read and patch the configuration, resize, and the size options.

Retries follow client.py: the POST that adds a user is never resent blindly (an uncertain failure is read back
by name); PATCH (the same values again change nothing), PUT /resize (the same target again) and DELETE are
idempotent and retried by `Upstream`.
"""

from __future__ import annotations

from poolpilot.server.kernel.text import quote
from poolpilot.tools.digitalocean.client import Created, DigitalOceanClient
from poolpilot.tools.digitalocean.cluster_models import ApiConfig, ApiOptions
from poolpilot.tools.digitalocean.errors import member, read_body
from poolpilot.tools.digitalocean.models import ApiUser

__all__ = ["add_user", "delete_user", "get_config", "list_options", "patch_config", "resize"]


async def add_user(do: DigitalOceanClient, cluster_id: str, name: str, *, replication: bool | None) -> Created[ApiUser]:
    body: dict[str, object] = {"name": name}
    if replication is not None:
        body["settings"] = {"pg_allow_replication": replication}
    return await do._create(("user", cluster_id, name), body, ApiUser, lambda found: [])


async def delete_user(do: DigitalOceanClient, cluster_id: str, name: str) -> str | None:
    path = do._cluster_path(cluster_id, "users", name)
    return await do._delete(path, f"user {quote(name)} on cluster {cluster_id}", cluster_id)


async def get_config(do: DigitalOceanClient, cluster_id: str) -> ApiConfig:
    what = f"the configuration of cluster {cluster_id}"
    response = await do._get(do._cluster_path(cluster_id, "config"), what, cluster_id=None)
    return read_body(ApiConfig, member(response, "config", what), what)


async def patch_config(do: DigitalOceanClient, cluster_id: str, config: dict[str, object]) -> None:
    """PATCH: DigitalOcean changes only the keys sent (`{"config": {...}}`); it answers 200 without a body."""
    await do._named(
        do.upstream.request(
            "PATCH", do._cluster_path(cluster_id, "config"), json_body={"config": config}, idempotent=True
        ),
        f"cluster {cluster_id}",
        None,
    )


async def resize(do: DigitalOceanClient, cluster_id: str, *, size: str, num_nodes: int, storage: int | None) -> None:
    """PUT /resize answers 202: the cluster turns `resizing`, then `online` again when it is done."""
    body: dict[str, object] = {"size": size, "num_nodes": num_nodes}
    if storage is not None:
        body["storage_size_mib"] = storage
    await do._named(
        do.upstream.request("PUT", do._cluster_path(cluster_id, "resize"), json_body=body, idempotent=True, ok=(202,)),
        f"cluster {cluster_id}",
        None,
    )


async def list_options(do: DigitalOceanClient) -> ApiOptions:
    response = await do.upstream.request("GET", "/v2/databases/options")
    what = "the database options"
    return read_body(ApiOptions, {"options": member(response, "options", what)}, what)
