"""PgBouncer's runtime settings: SHOW CONFIG as rows (toolset `pgbouncer_admin`, off by default).

Every value is text on the console (1.18 and 1.24: columns key, value, default, changeable). PgBouncer keeps no
password in its settings (they live in auth_file or come from auth_query), but a key naming one is masked anyway,
so a future setting cannot leak through this tool.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, BaseModel, Field

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError, validation_error
from poolpilot.server.kernel.guard import Change, GuardedResult, Plan, Preview, Safety
from poolpilot.server.kernel.state import ToolSpec
from poolpilot.server.kernel.text import check_name, quote
from poolpilot.server.kernel.tokens import fingerprint
from poolpilot.server.kernel.tooldef import Guarded, guarded, specs, tool
from poolpilot.tools.pgbouncer import ini, inisettings
from poolpilot.tools.pgbouncer.client import PgBouncerClient, _mapped
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


Persist = Annotated[
    bool,
    Field(strict=True, description="Also write the value into pgbouncer.ini's [pgbouncer] section, so it survives"),
]


class SetResult(GuardedResult):
    instance: str
    key: str
    value_now: str | None = None
    ini_line: str | None = Field(default=None, description="The [pgbouncer] line written when persist is true")


@dataclass(frozen=True)
class Persisting:
    """The planned file edit: the file as read (the write is refused if it changed since) and its new text."""

    path: str
    file: ini.IniFile
    edit: inisettings.SectionEdit


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


def _persisting(ctx: Context, instance: str, key: str, value: str) -> Persisting:
    """The file edit, validated before anything is sent: a value the file cannot hold, a file that cannot be read,
    or an %include that could override the line refuses the whole call."""
    client = pgb(ctx)
    path = client.ini_path(instance)
    with _mapped(instance):
        inisettings.check_value(value)
    file = client.read_ini(instance)
    try:
        edit = inisettings.set_in_section(file, key, value, base=Path(path).resolve().parent)
    except inisettings.IncludeConflict as exc:
        raise PoolpilotError(
            ErrorInfo(
                code="not_supported",
                message=f"cannot persist {key} in {path}: {exc}; nothing was changed",
                hint="Set it without persist (run time only), or edit the included file by hand.",
                provider="pgbouncer",
            )
        ) from None
    return Persisting(path, file, edit)


async def _plan_set(
    ctx: Context, instance: InstanceName, key: SettingKey, value: SettingValue, persist: Persist = False
) -> Plan[Persisting | None]:
    saving = _persisting(ctx, instance, key, value) if persist else None
    found = await _setting(ctx, instance, key)
    secret = bool(_SECRET_KEY.search(key))
    changes = [Change(field=key, before=MASK if secret else found.value, after=MASK if secret else value)]
    if saving is None:
        impact = (
            "applies at once to new server and client connections; not written to pgbouncer.ini, so the next "
            "RELOAD or restart brings back the file's value (or the default when the file does not set it)"
        )
        return Plan(
            Preview(action="set runtime setting", target=target(instance), changes=changes, impact=impact),
            fingerprint({"key": key, "value": found.value}),
            None,
        )
    before, after = saving.edit.line_before, saving.edit.line_after
    changes.append(Change(field="pgbouncer.ini", before=_masked(key, before), after=_masked(key, after)))
    where = "replaces its line" if before is not None else "adds a line to [pgbouncer]"
    impact = (
        f"applies at once to new server and client connections, then {where} in {saving.path} (line "
        f"{saving.edit.line_number}; every other line is kept), so RELOAD and restarts keep it"
    )
    preview = Preview(action="set and persist setting", target=target(instance), changes=changes, impact=impact)
    return Plan(preview, fingerprint({"key": key, "value": found.value, "file": saving.file.text}), saving)


def _masked(key: str, line: str | None) -> str | None:
    if line is None or not _SECRET_KEY.search(key):
        return line
    return inisettings.render(key, MASK)


@guarded(title="Set a PgBouncer setting", plan=_plan_set, lock=instance_lock)
async def pgbouncer_set_config(
    ctx: Context,
    instance: InstanceName,
    key: SettingKey,
    value: SettingValue,
    g: Guarded[Persisting | None],
    persist: Persist = False,
) -> SetResult:
    """Change a runtime setting (SET key = value), optionally also in pgbouncer.ini; asks for confirmation first."""
    fields: dict[str, object] = {**g.decision.result_fields("live"), "instance": instance, "key": key}
    if not g.decision.approved:
        return SetResult.model_validate(fields)
    client = pgb(ctx)
    secret = bool(_SECRET_KEY.search(key))
    async with g.commit() as plan:
        await _send_set(ctx, instance, key, value)
        if plan.data is not None:
            _write(client, instance, key, plan.data, MASK if secret else quote(value))
    now = (await _setting(ctx, instance, key)).value
    shown = MASK if secret else quote(now or "")
    written = plan.data.edit.line_after if plan.data is not None else None
    where = f" and wrote it to {plan.data.path}" if plan.data is not None else ""
    message = f"{key} set{where}; PgBouncer now reports it as {shown}."
    return SetResult.model_validate(
        {
            **fields,
            "executed": True,
            "message": message,
            "value_now": MASK if secret else now,
            "ini_line": _masked(key, written),
        }
    )


async def _send_set(ctx: Context, instance: str, key: str, value: str) -> None:
    command = f"SET {key} = {_console_literal(value)}"
    try:
        with _mapped(instance):
            await pgb(ctx).console(instance).run_command(command)
    except PoolpilotError as exc:
        if exc.info.code != "upstream_error":
            raise
        # The console's error repeats the command; say what it answered without echoing the refused value.
        answer = exc.info.message.partition(f"{command} failed: ")[2] or "an error"
        raise PoolpilotError(
            exc.info.model_copy(
                update={
                    "message": f"PgBouncer {instance} refused the value for {key} (it answered: {answer}); "
                    "nothing was changed",
                    "hint": "pgbouncer_get_config shows the current value and default; PgBouncer's log says why.",
                    "field": "value",
                }
            )
        ) from None


def _write(client: PgBouncerClient, instance: str, key: str, saving: Persisting, shown: str) -> None:
    """After the SET: the write is atomic (temp file and rename, owner and mode kept), and refused if the file
    changed since the preview. A failure here is reported as such: PgBouncer runs the new value, the file does not."""
    try:
        ini.write_atomically(saving.path, saving.edit.text, expected=saving.file.text)
    except (OSError, ini.ConcurrentEdit) as exc:
        reason = "it changed since the preview" if isinstance(exc, ini.ConcurrentEdit) else exc.strerror or str(exc)
        raise PoolpilotError(
            ErrorInfo(
                code="conflict" if isinstance(exc, ini.ConcurrentEdit) else "upstream_error",
                message=f"PgBouncer {instance} now runs {key} = {shown} (the SET succeeded), but {saving.path} was "
                f"NOT written ({reason}): the next RELOAD or restart brings back the file's value",
                hint="Fix the file's problem and call again with persist, or set it back with persist false.",
                provider="pgbouncer",
            )
        ) from None


SPECS: tuple[ToolSpec, ...] = specs(pgbouncer_get_config, pgbouncer_set_config)
