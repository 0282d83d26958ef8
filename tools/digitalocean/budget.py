"""A cluster's connection budget for PgBouncer pools (NOTES.md §3–4), as plain functions.

All pools of a cluster share `25 × GB of the primary node's RAM − 3` backend connections. There is no RAM
field in the API: it is read from the size slug (`db-s-2vcpu-4gb` → 4). A slug without a RAM part
(`c-96-intel`) gives an unknown budget: then nothing is refused here and the API validates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError

__all__ = [
    "CONNECTIONS_PER_GB",
    "RESERVED_CONNECTIONS",
    "allocated",
    "available",
    "budget",
    "check_budget",
    "largest_fitting_size",
    "ram_gb_from_slug",
]

CONNECTIONS_PER_GB = 25
RESERVED_CONNECTIONS = 3
_RAM_IN_SLUG = re.compile(r"-(\d+)gb(?:-|$)")


def ram_gb_from_slug(slug: str) -> int | None:
    """RAM in GB of a size slug such as `db-s-2vcpu-4gb` or `gd-2vcpu-8gb-intel`; None when the slug omits it."""
    match = _RAM_IN_SLUG.search(slug)
    return int(match.group(1)) if match else None


def budget(size_slug: str) -> int | None:
    """Backend connections all pools of the cluster may share; None when the RAM is unknown."""
    ram = ram_gb_from_slug(size_slug)
    return None if ram is None else max(CONNECTIONS_PER_GB * ram - RESERVED_CONNECTIONS, 0)


def allocated(sizes: Iterable[int]) -> int:
    return sum(sizes)


def available(total: int | None, used: int) -> int | None:
    return None if total is None else max(total - used, 0)


def largest_fitting_size(total: int | None, used: int, freed: int = 0) -> int | None:
    """The largest pool size that still fits; `freed` is the current size of a pool being resized."""
    left = available(total, used - freed)
    return left


def check_budget(
    *, cluster_name: str, size_slug: str, sizes: Iterable[int], wanted: int, freed: int = 0, field: str = "size"
) -> None:
    """Refuse a pool size that would overflow the cluster's budget, naming the largest size that fits.

    `sizes` are the current sizes of all pools of the cluster; `freed` is the current size of the pool being
    updated (it is replaced, so its connections count as free).
    """
    total = budget(size_slug)
    if total is None:
        return
    left = largest_fitting_size(total, allocated(sizes), freed)
    assert left is not None
    if wanted <= left:
        return
    ram = ram_gb_from_slug(size_slug)
    why = f"budget {total} = 25 × {ram} GB − 3, shared by all pools; nothing was sent"
    step = f"retry with {field} <= {left}" if left >= 1 else "free connections first by shrinking or deleting a pool"
    raise PoolpilotError(
        ErrorInfo(
            code="budget_exceeded",
            message=f"{field} {wanted} exceeds the {left} connections left on {cluster_name}.",
            hint=f"{step} ({why}).",
            provider="digitalocean",
            field=field,
        )
    )
