"""Read and edit the `[databases]` section of `pgbouncer.ini`, one line at a time.

The grammar is PgBouncer's own (1.18: libusual `cfparser.c`, `loader.c` `parse_database`), not generic INI:
`;` and `#` start a comment only at the start of a line; a key is `[A-Za-z0-9_.*-]+` (1.18 rejects the
double-quoted names its docs describe: "syntax error in configuration", and RELOAD still answers OK); the
value is the rest of the line, a list of `key=value` pairs separated by spaces, where a value may be single-
quoted with `''` for a quote. PgBouncer reads numbers with `atoi`, so `pool_size=banana` loads as 0 without
a word: every value is validated here before anything is written.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, ValidationError, field_validator

PoolMode = Literal["session", "transaction", "statement"]

# PgBouncer keeps database names in a 64-byte buffer (MAX_DBNAME); PostgreSQL truncates names at 63 bytes.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
_RESERVED = frozenset({"pgbouncer"})  # the admin console; PgBouncer refuses to load it as a key
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PARAM_KEY = re.compile(r"[a-z_]{1,63}")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.,:/@+-]+")
_NUMBERS = ("port", "pool_size", "reserve_pool", "max_db_connections")  # PgBouncer reads them with atoi()
_CORE_KEYS = ("host", "port", "dbname", "user", "password", *_NUMBERS[1:], "pool_mode")  # rendered in this order
_INT_EXTRAS = {"min_pool_size": (0, 10_000)}  # atoi'd by PgBouncer like the core numbers
_SOCKET_DIR_MAX = 92  # sun_path is 108 bytes and PgBouncer appends "/.s.PGSQL.65535"

ALLOWED: dict[str, str] = {
    "name": "1-63 of A-Z a-z 0-9 _ . - (PgBouncer 1.18 accepts no quoting), not 'pgbouncer'",
    "host": "hostname, IPv4, IPv6, /unix/socket/dir or @abstract, or a comma-separated list of these",
    "port": "integer 1-65535",
    "dbname": "1-63 bytes of UTF-8, no control characters",
    "user": "1-63 bytes of UTF-8, no control characters",
    "password": "1-2047 bytes of UTF-8, no control characters",
    "pool_size": "integer 1-10000",
    "reserve_pool": "integer 0-10000",
    "max_db_connections": "integer 0-100000 (0 = no limit)",
    "pool_mode": "session, transaction, statement",
    "extra": "lower-case parameter names other than the fields above; values of 1-4096 characters without "
    "control characters; min_pool_size an integer 0-10000",
}


class InvalidSetting(ValueError):
    """A value PgBouncer would misread; names the field and what it accepts, never the rejected value."""

    def __init__(self, field: str, message: str, allowed: str) -> None:
        super().__init__(f"{field}: {message} (allowed: {allowed})")
        self.field = field
        self.message = message
        self.allowed = allowed


def _text(field: str, value: str, max_bytes: int) -> str:
    allowed = ALLOWED[field.partition(".")[0]]
    if not value:
        raise InvalidSetting(field, "must not be empty (PgBouncer rejects empty values)", allowed)
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InvalidSetting(field, f"longer than {max_bytes} bytes", allowed)
    # Cc covers NUL, tab, CR and LF; Zl/Zp and surrogates would break the file or its encoding.
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in value):
        raise InvalidSetting(field, "contains a control or line-break character", allowed)
    return value


def _host_part(part: str) -> bool:
    if part.startswith(("/", "@")):
        return len(part.encode("utf-8", "surrogatepass")) <= _SOCKET_DIR_MAX and part.isprintable()
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(part)
        return True
    labels = part.removesuffix(".").split(".")
    return (
        len(part) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()  # "999.1.1.1" is a broken IPv4 address, not a hostname
    )


class DatabaseEntry(BaseModel):
    """One `[databases]` line. Construct it with keywords: construction validates and raises `InvalidSetting`.

    `None` means "not set": PgBouncer then applies its default (unix socket, port 5432, dbname = name,
    the client's user, `default_pool_size`, ...). `extra` keeps the other parameters in file order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    host: str | None = None
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    dbname: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    pool_size: StrictInt | None = Field(default=None, ge=1, le=10_000)
    reserve_pool: StrictInt | None = Field(default=None, ge=0, le=10_000)
    max_db_connections: StrictInt | None = Field(default=None, ge=0, le=100_000)
    pool_mode: PoolMode | None = None
    extra: dict[str, str] = Field(default_factory=dict)

    def __init__(self, **data: object) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _invalid_setting(exc) from None  # `from None`: pydantic's text quotes the input value

    def merged(self, **changes: object) -> DatabaseEntry:
        """Return a validated copy with `changes` applied (`model_copy` would skip validation)."""
        return DatabaseEntry(**{**dict(self), **changes})

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value) or value in _RESERVED:
            raise InvalidSetting("name", "not a database name PgBouncer can load", ALLOWED["name"])
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        if value is not None and not all(_host_part(p) for p in _text("host", value, 1024).split(",")):
            raise InvalidSetting("host", "not a hostname, IP address or socket directory", ALLOWED["host"])
        return value

    @field_validator("dbname", "user")
    @classmethod
    def _check_identifier(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        return None if value is None else _text(info.field_name or "dbname", value, 63)

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _text("password", value.get_secret_value(), 2047)
        return value

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            field = f"extra.{key}" if _PARAM_KEY.fullmatch(key) else "extra"
            if field == "extra" or key in _CORE_KEYS:
                raise InvalidSetting(field, "not an extra parameter name", ALLOWED["extra"])
            _text(field, text, 4096)
            low, high = _INT_EXTRAS.get(key, (0, -1))
            if key in _INT_EXTRAS and not (text.isascii() and text.isdigit() and low <= int(text) <= high):
                raise InvalidSetting(field, "not an integer in range", ALLOWED["extra"])
        return value


def _invalid_setting(exc: ValidationError) -> InvalidSetting:
    error = exc.errors(include_url=False, include_input=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidSetting):
        return cause
    field = ".".join(str(part) for part in error["loc"]) or "entry"
    top = str(error["loc"][0]) if error["loc"] else ""
    allowed = ALLOWED.get(top, "the fields " + ", ".join(("name", *_CORE_KEYS, "extra")))
    return InvalidSetting(field, error["msg"].removeprefix("Value error, "), allowed)


def _quote(value: str) -> str:
    return value if _BARE_VALUE.fullmatch(value) else "'" + value.replace("'", "''") + "'"


def render_line(entry: DatabaseEntry, order: Sequence[str] = (), *, masked: bool = False) -> str:
    """Return the line for `entry` (no line ending): `order` lists keys to put first, `masked` hides the password."""
    params: dict[str, str] = {}
    for key in _CORE_KEYS:
        value = getattr(entry, key)
        if isinstance(value, SecretStr):
            value = "***" if masked else value.get_secret_value()
        if value is not None:
            params[key] = str(value)
    params.update(entry.extra)
    keys = [k for k in order if k in params] + [k for k in params if k not in order]
    body = " ".join(f"{key}={_quote(params[key])}" for key in keys)
    return f"{entry.name} = {body}" if body else f"{entry.name} ="


def _split_params(name: str, value: str) -> dict[str, str]:
    """Split a connection string exactly like PgBouncer's `cstr_get_pair` (spaces only, '' in quotes)."""
    params: dict[str, str] = {}
    pos = 0
    while True:
        while pos < len(value) and value[pos] == " ":
            pos += 1
        if pos == len(value):
            return params
        match = re.compile(r"([^= ]+) *= *").match(value, pos)
        if match is None:
            raise InvalidSetting(f"databases.{name}", "connection string syntax error", "key=value pairs")
        key, pos = match.group(1), match.end()
        if value.startswith("'", pos):
            quoted = re.compile(r"'((?:[^']|'')*)'").match(value, pos)
            if quoted is None:
                raise InvalidSetting(f"databases.{name}.{key}", "unterminated quote", "'quoted value'")
            params[key], pos = quoted.group(1).replace("''", "'"), quoted.end()
        else:
            end = value.find(" ", pos)
            end = len(value) if end < 0 else end
            params[key], pos = value[pos:end], end


def _int(field: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise InvalidSetting(field, "not an integer", ALLOWED[field])
    return int(value)


def parse_entry(name: str, value: str) -> DatabaseEntry:
    """Return the entry for one `name = value` pair, validated like a new one."""
    params = _split_params(name, value)
    data: dict[str, object] = {"name": name}
    extra: dict[str, str] = {}
    for key, text in params.items():
        if key in _NUMBERS:
            data[key] = _int(key, text)
        elif key == "pool_mode":
            data[key] = text.lower()  # PgBouncer's lookup ignores case
        elif key in _CORE_KEYS:
            data[key] = text
        else:
            extra[key] = text
    return DatabaseEntry(**data, extra=extra)


_KEY_LINE = re.compile(r"""(?P<key>[A-Za-z0-9_.*-]+|'[^'\n]+'|"(?:[^"\n]|"")+")[ \t]*=[ \t]*(?P<value>.*?)\s*""")


class _Line(NamedTuple):
    text: str  # as in the file, line ending included
    kind: Literal["header", "entry", "include", "other"]  # other: comment, blank, or what PgBouncer rejects
    section: str | None
    key: str | None = None  # unquoted key of an entry
    value: str | None = None


@dataclass(frozen=True)
class IniFile:
    """A parsed `pgbouncer.ini`: every line kept as-is, so untouched lines round-trip byte for byte."""

    lines: tuple[_Line, ...]

    @property
    def text(self) -> str:
        return "".join(line.text for line in self.lines)

    def _database_lines(self, name: str | None = None) -> list[int]:
        wanted = [
            (i, line) for i, line in enumerate(self.lines) if line.kind == "entry" and line.section == "databases"
        ]
        return [i for i, line in wanted if name is None or line.key == name]

    def databases(self) -> dict[str, DatabaseEntry]:
        """Return this file's pools by name (not those of `%include`d files; the `*` fallback is left out)."""
        found: dict[str, DatabaseEntry] = {}
        for i in self._database_lines():
            key, value = self.lines[i].key, self.lines[i].value
            if key is not None and value is not None and key != "*":
                found[key] = parse_entry(key, value)  # a repeated name: PgBouncer keeps the last line too
        return found

    def line(self, name: str) -> str | None:
        """Return the line that defines `name` as written, without its line ending."""
        found = self._database_lines(name)
        return self.lines[found[-1]].text.rstrip("\r\n") if found else None

    def with_entry(self, entry: DatabaseEntry) -> str:
        """Return the file text with `entry`'s line replaced, or appended to the `[databases]` section."""
        lines = list(self.lines)
        eol = "\r\n" if lines and lines[0].text.endswith("\r\n") else "\n"
        found, order = self._database_lines(entry.name), []
        if found:
            old = lines[found[-1]]
            with contextlib.suppress(InvalidSetting):  # a broken old line is replaced all the same
                order = list(_split_params(entry.name, old.value or ""))
            indent = old.text[: len(old.text) - len(old.text.lstrip(" \t"))]
            ending = old.text[len(old.text.rstrip("\r\n")) :]
            lines[found[-1]] = old._replace(text=indent + render_line(entry, order) + ending)
            return "".join(line.text for line in lines)
        new = render_line(entry) + eol
        headers = [i for i, line in enumerate(lines) if line.kind == "header" and line.section == "databases"]
        if not headers:
            prefix = "" if not lines or lines[-1].text.endswith("\n") else eol
            return self.text + prefix + "[databases]" + eol + new
        at = headers[-1] + 1
        for i in range(at, len(lines)):
            if lines[i].kind == "header":
                break
            if lines[i].kind in ("entry", "include"):
                at = i + 1  # after the section's last entry, before comments that lead the next section
        if not lines[at - 1].text.endswith("\n"):
            lines[at - 1] = lines[at - 1]._replace(text=lines[at - 1].text + eol)
        return "".join(line.text for line in lines[:at]) + new + "".join(line.text for line in lines[at:])

    def without(self, name: str) -> str:
        """Return the file text without the lines that define `name`; `KeyError` when there are none."""
        found = set(self._database_lines(name))
        if not found:
            raise KeyError(name)
        return "".join(line.text for i, line in enumerate(self.lines) if i not in found)


def parse(text: str) -> IniFile:
    """Split `text` into lines (on "\\n" only, as PgBouncer does) and classify each one."""
    parts = text.split("\n")
    raw = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    section: str | None = None
    lines: list[_Line] = []
    for line in raw:
        body = line.lstrip(" \t\r\v\f").rstrip("\n")
        if body.startswith("[") and "]" in body:
            section = body[1 : body.index("]")]
            lines.append(_Line(line, "header", section))
        elif re.match(r"%include[ \t]", body):
            lines.append(_Line(line, "include", section))
        elif not body.startswith(("#", ";")) and (match := _KEY_LINE.fullmatch(body)):
            key = match["key"]
            if key[0] in "'\"":  # quoted names: PgBouncer 1.18 refuses them, newer versions and the docs do not
                key = key[1:-1].replace(key[0] * 2, key[0])
            lines.append(_Line(line, "entry", section, key, match["value"]))
        else:
            lines.append(_Line(line, "other", section))
    return IniFile(tuple(lines))


def load(path: str | os.PathLike[str]) -> IniFile:
    """Read and parse a config file; undecodable bytes survive the round trip unchanged."""
    return parse(Path(path).read_bytes().decode("utf-8", "surrogateescape"))


def _replace(target: Path, data: bytes, like: os.stat_result) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(out.fileno(), like.st_uid, like.st_gid)
                except PermissionError:
                    raise PermissionError(
                        f"cannot keep the owner {like.st_uid}:{like.st_gid} of {target}: run as that user or as root"
                    ) from None
            os.fchmod(out.fileno(), stat.S_IMODE(like.st_mode))  # after chown, which clears set-id bits
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


class ConcurrentEdit(RuntimeError):
    """The file changed since it was read; nothing was written."""


def write_atomically(path: str | os.PathLike[str], text: str, *, expected: str | None = None) -> Path:
    """Replace the file with `text` (same owner and mode), keeping the old content in `<path>.bak`.

    A symlink is followed, so the file it points to is replaced and the link kept. With `expected`, the
    write is refused (`ConcurrentEdit`) when the file no longer holds that text. Returns the backup path.
    """
    target = Path(path).resolve()
    like = target.stat()
    current = target.read_bytes()
    if expected is not None and current != expected.encode("utf-8", "surrogateescape"):
        raise ConcurrentEdit(f"{target} changed since it was read; nothing was written")
    backup = target.with_name(target.name + ".bak")
    _replace(backup, current, like)  # the backup may hold passwords too: same owner and mode
    _replace(target, text.encode("utf-8", "surrogateescape"), like)
    return backup


def restore_backup(path: str | os.PathLike[str]) -> None:
    """Put `<path>.bak` back in place of the file, atomically and with the file's owner and mode."""
    target = Path(path).resolve()
    backup = target.with_name(target.name + ".bak")
    data = backup.read_bytes()
    _replace(target, data, target.stat() if target.exists() else backup.stat())
