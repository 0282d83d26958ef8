"""What a pgbouncer.ini entry says against what PgBouncer loaded (SHOW DATABASES): the check after every edit and
reload, and the masked line shown in previews."""

from __future__ import annotations

import re

from poolpilot.server.kernel.text import shown
from poolpilot.tools.pgbouncer import ini
from poolpilot.tools.pgbouncer.rows import ShowDatabasesRow

__all__ = ["Difference", "describe", "entry_of", "loaded_differences", "masked_line"]

# What a [databases] field is called in ShowDatabasesRow (admin.py maps renamed columns, such as 1.24's
# reserve_pool_size, onto these): the fields a reload is verified against.
_LOADED_AS = {
    "host": "host",
    "port": "port",
    "dbname": "database",
    "user": "force_user",
    "pool_size": "pool_size",
    "reserve_pool": "reserve_pool",
    "pool_mode": "pool_mode",
    "max_db_connections": "max_connections",
}


def masked_line(file: ini.IniFile, name: str) -> str | None:
    """The line defining `name` as written, with its password masked (or None when there is no such line)."""
    raw, entry = file.line(name), entry_of(file, name)
    if raw is None or entry is None:
        return None
    if entry.password is None:
        return raw.strip()
    # Mask in place, so the preview keeps the operator's key order; re-render when the password is quoted
    # differently from how we would write it.
    written = ini.render_line(ini.DatabaseEntry(name=name, password=entry.password)).split("password=", 1)[1]
    masked = re.sub(rf"(?<![^ =])password *= *{re.escape(written)}(?= |$)", "password=***", raw.strip())
    return masked if written not in masked else ini.render_line(entry, masked=True)


def entry_of(file: ini.IniFile, name: str) -> ini.DatabaseEntry | None:
    """Parse only `name`'s line: another broken line must not block an edit of this one."""
    raw = file.line(name)
    return None if raw is None else ini.parse("[databases]\n" + raw + "\n").databases().get(name)


Difference = tuple[str, str | int | None, str | int | None]  # field, in the file, loaded by PgBouncer


def loaded_differences(entry: ini.DatabaseEntry, row: ShowDatabasesRow | None) -> list[Difference]:
    """Compare exactly the fields `entry` sets with what PgBouncer loaded."""
    if row is None:
        return [("database", entry.name, None)]
    found: list[Difference] = []
    for name, column in _LOADED_AS.items():
        wanted, loaded = getattr(entry, name), getattr(row, column)
        if wanted is not None and wanted != loaded:
            found.append((name, wanted, loaded))
    min_pool = entry.extra.get("min_pool_size")
    if min_pool is not None and int(min_pool) != row.min_pool_size:
        found.append(("min_pool_size", int(min_pool), row.min_pool_size))
    return found


def describe(differences: list[Difference]) -> str:
    return "; ".join(
        f"{field}: file has {shown(wanted)}, PgBouncer shows {shown(loaded)}" for field, wanted, loaded in differences
    )
