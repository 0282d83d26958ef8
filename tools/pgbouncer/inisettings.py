"""Write one setting into the `[pgbouncer]` section of `pgbouncer.ini` (pgbouncer_set_config with `persist`).

Only the one line changes; every other byte of the file is kept (ini.py's line model). Checked against 1.18 and
1.24: PgBouncer applies the lines in file order, so when a key appears twice the *last* line wins (the one
replaced here); keys are case-sensitive (`Server_Lifetime` fails the whole load); the value is the rest of the
line with surrounding whitespace trimmed, quotes kept and no inline comment (`;` and `#` stay in the value);
`%include` reads another file at that point, so an included file after our line can override it.

A value goes into the file only if it reads back the same and cannot end, hide or start a line: no control,
format or line/paragraph separator character (ini.py's rule, plus format characters, the kernel's name rule), no
surrounding whitespace (PgBouncer trims it), and none of `[`, `;`, `#` (harmless to PgBouncer, but a generic INI
reader or a person would take them for a section or a comment).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poolpilot.tools.pgbouncer import ini

__all__ = ["ALLOWED_VALUE", "IncludeConflict", "SectionEdit", "check_value", "set_in_section"]

SECTION = "pgbouncer"
ALLOWED_VALUE = (
    "0-1024 characters on one line: no control, format or line-separator characters, none of [ ; #, "
    "no leading or trailing whitespace"
)
_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")  # Cc holds NUL, CR, LF and U+0085 (NEL)
_MAX_INCLUDE_DEPTH = 10  # PgBouncer's own limit for nested %include

Reader = Callable[[Path], ini.IniFile]


class IncludeConflict(ValueError):
    """An `%include`d file could override the line (or could not be read to rule that out); nothing was written."""


def check_value(value: str, field: str = "value") -> str:
    """Return `value` if it can stand as the value of a `[pgbouncer]` line; else `ini.InvalidSetting` naming
    `field` and the rule, never the value."""
    if len(value) > 1024:
        raise ini.InvalidSetting(field, "longer than 1024 characters", ALLOWED_VALUE)
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        raise ini.InvalidSetting(field, "contains a control, format or line-break character", ALLOWED_VALUE)
    if any(ch in "[;#" for ch in value):
        raise ini.InvalidSetting(field, "contains [, ; or #, which pgbouncer.ini cannot hold safely", ALLOWED_VALUE)
    if value != value.strip():
        raise ini.InvalidSetting(field, "has leading or trailing whitespace, which PgBouncer trims", ALLOWED_VALUE)
    return value


@dataclass(frozen=True)
class SectionEdit:
    text: str  # the whole new file
    line_before: str | None  # the replaced line without its line ending; None when appended
    line_after: str
    line_number: int  # 1-based, in the new file


def render(key: str, value: str) -> str:
    return f"{key} = {value}" if value else f"{key} ="


def _includes(file: ini.IniFile, base: Path, read: Reader, depth: int, seen: frozenset[Path]) -> list[ini.IniFile]:
    """The files `file`'s `%include` lines read, nested ones too; raises `IncludeConflict` when one cannot be read."""
    found: list[ini.IniFile] = []
    for line in file.lines:
        if line.kind == "include":
            found += _included(line.text, base, read, depth, seen)
    return found


def _included(text: str, base: Path, read: Reader, depth: int, seen: frozenset[Path]) -> list[ini.IniFile]:
    name = text.strip().removeprefix("%include").strip()
    path = (base / name).resolve()  # a relative path: taken from the including file's folder
    if depth >= _MAX_INCLUDE_DEPTH or path in seen:
        raise IncludeConflict("pgbouncer.ini has %include files nested too deep (or in a loop) to check")
    try:
        inner = read(path)
    except (OSError, UnicodeError):
        raise IncludeConflict(f"pgbouncer.ini %includes {path}, which cannot be read to check it") from None
    return [inner, *_includes(inner, path.parent, read, depth + 1, seen | {path})]


def _check_includes(file: ini.IniFile, key: str, start: int, at: int, base: Path, read: Reader) -> None:
    """Includes between the section header `start` and our line `at` must not set the key or switch the section;
    includes after it must not set the key: either would make PgBouncer load another value than ours."""
    for index, line in enumerate(file.lines):
        if line.kind != "include" or index <= start:
            continue
        for inner in _included(line.text, base, read, 0, frozenset()):
            if index >= at and any(x.kind == "entry" and x.key == key for x in inner.lines):
                raise IncludeConflict(f"{key} is also set in a file pgbouncer.ini %includes after it; change it there")
            if index < at and any(x.kind == "header" for x in inner.lines):
                raise IncludeConflict("an %include inside [pgbouncer] switches the section before this line")


def set_in_section(file: ini.IniFile, key: str, value: str, *, base: Path, read: Reader = ini.load) -> SectionEdit:
    """Return the file with `key = value` in `[pgbouncer]`: the key's last line there replaced (PgBouncer keeps the
    last), else a line appended to the last `[pgbouncer]` section, else a new section at the end. `base` is the
    folder relative `%include` paths start from."""
    check_value(value)
    lines = list(file.lines)
    eol = "\r\n" if lines and lines[0].text.endswith("\r\n") else "\n"
    new = render(key, value)
    headers = [i for i, x in enumerate(lines) if x.kind == "header" and x.section == SECTION]
    existing = [i for i, x in enumerate(lines) if x.kind == "entry" and x.section == SECTION and x.key == key]
    if existing:
        at = existing[-1]
        old = lines[at]
        start = max(i for i in headers if i < at)
        _check_includes(file, key, start, at, base, read)
        indent = old.text[: len(old.text) - len(old.text.lstrip(" \t"))]
        ending = old.text[len(old.text.rstrip("\r\n")) :]
        lines[at] = old._replace(text=indent + new + ending)
        text = "".join(x.text for x in lines)
        return SectionEdit(text, old.text.rstrip("\r\n"), new, at + 1)
    if not headers:
        prefix = "" if not lines or lines[-1].text.endswith("\n") else eol
        text = file.text + prefix + f"[{SECTION}]" + eol + new + eol
        return SectionEdit(text, None, new, len(lines) + 2)
    start = at = headers[-1] + 1
    for i in range(start, len(lines)):
        if lines[i].kind == "header":
            break
        if lines[i].kind in ("entry", "include"):
            at = i + 1  # after the section's last line, before comments that lead the next section
    _check_includes(file, key, headers[-1], at, base, read)
    if not lines[at - 1].text.endswith("\n"):
        lines[at - 1] = lines[at - 1]._replace(text=lines[at - 1].text + eol)
    text = "".join(x.text for x in lines[:at]) + new + eol + "".join(x.text for x in lines[at:])
    return SectionEdit(text, None, new, at + 1)
