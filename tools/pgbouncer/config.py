"""PgBouncer's runtime settings: SHOW CONFIG as rows (toolset `pgbouncer_admin`, off by default).

Every value is text on the console (1.18 and 1.24: columns key, value, default, changeable). PgBouncer keeps no
password in its settings (they live in auth_file or come from auth_query), but a key naming one is masked anyway,
so a future setting cannot leak through this tool.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, GuardedResult, Plan, Preview, Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import check_name, quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.pgbouncer.client import _mapped
from poolpilot.tools.pgbouncer.models import Cursor, InstanceName, PageSize
from poolpilot.tools.pgbouncer.plans import check_cursor, instance_lock, pgb, target
from poolpilot.tools.pgbouncer.rows import Row

__all__ = ["SPECS", "ShowConfigRow", "pgbouncer_set_config"]

_SECRET_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)
MASK = "***"


def _plain_value(value: str) -> str:
    """One line of text, held to the kernel's name rule (no control, format or line-separator characters, which
    would end or hide a console command; no bare dot segment, which no setting takes); names the rule only."""
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise ValueError("must not contain lone surrogates")
    return check_name(value)


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
    check_cursor(cursor)
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


# -- SET (destructive) --------------------------------------------------------------------------------

SettingKey = Annotated[
    str, Field(description="A key from pgbouncer_get_config", min_length=1, max_length=64, pattern=r"^[a-z_0-9]+$")
]
SettingValue = Annotated[
    str,
    Field(description="The new value, as PgBouncer's ini would hold it", max_length=1024),
    AfterValidator(_plain_value),
]


class SetResult(GuardedResult):
    instance: str
    key: str
    value_now: str | None = None


def _console_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _setting(ctx: Context, instance: str, key: str) -> ShowConfigRow:
    client = pgb(ctx)
    client.instance(instance)
    with _mapped(instance):
        rows = await client.console(instance).show("SHOW CONFIG", ShowConfigRow)
    found = next((r for r in rows if r.key == key), None)
    if found is None:
        raise validation_error("key", "not a PgBouncer setting", hint="pgbouncer_get_config lists the keys.")
    if found.changeable != "yes":
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=f"{key} cannot be changed at run time; PgBouncer reads it at start only",
                hint="Change it in pgbouncer.ini and restart PgBouncer.",
                provider="pgbouncer",
            )
        )
    return found


async def _plan_set(ctx: Context, instance: InstanceName, key: SettingKey, value: SettingValue) -> Plan[None]:
    found = await _setting(ctx, instance, key)
    secret = bool(_SECRET_KEY.search(key))
    preview = Preview(
        action="set runtime setting",
        target=target(instance),
        changes=[Change(field=key, before=MASK if secret else found.value, after=MASK if secret else value)],
        impact="applies at once to new server and client connections; not written to pgbouncer.ini, so a restart "
        "(and a RELOAD, for a key the file sets) brings back the file's value",
    )
    return Plan(preview, fingerprint({"key": key, "value": found.value}), None)


@guarded(title="Set a PgBouncer setting", plan=_plan_set, lock=instance_lock)
async def pgbouncer_set_config(
    ctx: Context, instance: InstanceName, key: SettingKey, value: SettingValue, g: Guarded[None]
) -> SetResult:
    """Change a runtime setting (SET key = value), then read it back; asks for confirmation first."""
    fields: dict[str, object] = {**g.decision.result_fields("live"), "instance": instance, "key": key}
    if not g.decision.approved:
        return SetResult.model_validate(fields)
    client = pgb(ctx)
    async with g.commit():
        with _mapped(instance):
            await client.console(instance).run_command(f"SET {key} = {_console_literal(value)}")
    now = (await _setting(ctx, instance, key)).value
    secret = bool(_SECRET_KEY.search(key))
    message = f"{key} set; PgBouncer now reports it as {MASK if secret else quote(now or '')}."
    return SetResult.model_validate(
        {**fields, "executed": True, "message": message, "value_now": MASK if secret else now}
    )


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_get_config, pgbouncer_set_config)
