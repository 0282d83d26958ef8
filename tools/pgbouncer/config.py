"""PgBouncer's runtime settings: SHOW CONFIG as rows (toolset `pgbouncer_admin`, off by default).

Every value is text on the console (1.18 and 1.24: columns key, value, default, changeable). PgBouncer keeps no
password in its settings (they live in auth_file or come from auth_query), but a key naming one is masked anyway,
so a future setting cannot leak through this tool.
"""

from __future__ import annotations

import re
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.errors import validation_error
from poolpilot.server.kernel.guard import Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import check_name
from poolpilot.server.kernel.tooldef import specs, tool
from poolpilot.tools.pgbouncer.client import _mapped
from poolpilot.tools.pgbouncer.models import Cursor, InstanceName, PageSize
from poolpilot.tools.pgbouncer.plans import pgb
from poolpilot.tools.pgbouncer.rows import Row

__all__ = ["SPECS", "ShowConfigRow"]

_SECRET_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)
MASK = "***"


class ShowConfigRow(Row):
    key: str
    value: str | None = None
    default: str | None = None
    changeable: str | None = None  # "yes" / "no"


class Setting(BaseModel):
    key: str
    value: str | None
    default: str | None = None
    changeable: bool = Field(description="SET can change it at run time (else it needs a restart)")


class ConfigList(BaseModel):
    backend: str = "live"
    instance: str
    settings: list[Setting]
    total: int = Field(description="Settings that matched, before paging")
    next_cursor: str | None = None


KeyFilter = Annotated[
    str | None,
    Field(description="Only keys containing this text", min_length=1, max_length=64),
    AfterValidator(lambda v: v if v is None else check_name(v)),
]
ChangedOnly = Annotated[bool, Field(strict=True, description="Only settings whose value differs from the default")]


@tool(Safety.READ, "PgBouncer settings")
async def pgbouncer_get_config(
    ctx: Context,
    instance: InstanceName,
    key: KeyFilter = None,
    changed_only: ChangedOnly = False,
    page_size: PageSize = 50,
    cursor: Cursor = None,
) -> ConfigList:
    """PgBouncer's runtime settings (SHOW CONFIG): value, default, and whether SET can change it."""
    client = pgb(ctx)
    client.instance(instance)
    if cursor is not None and not cursor.isdigit():
        raise validation_error("cursor", "not a cursor returned by this tool", hint="Omit cursor for the first page.")
    with _mapped(instance):
        found = await client.console(instance).show("SHOW CONFIG", ShowConfigRow)
    rows = [
        Setting(
            key=r.key,
            value=MASK if _SECRET_KEY.search(r.key) and r.value else r.value,
            default=MASK if _SECRET_KEY.search(r.key) and r.default else r.default,
            changeable=r.changeable == "yes",
        )
        for r in found
        if (key is None or key in r.key) and (not changed_only or (r.value or "") != (r.default or ""))
    ]
    start = int(cursor or 0)
    more = start + page_size < len(rows)
    return ConfigList(
        instance=instance,
        settings=rows[start : start + page_size],
        total=len(rows),
        next_cursor=str(start + page_size) if more else None,
    )


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_get_config)
