import os
import pwd
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolpilot.tools.pgbouncer.ini import (
    ConcurrentEdit,
    DatabaseEntry,
    InvalidSetting,
    load,
    parse,
    parse_entry,
    render_line,
    restore_backup,
    write_atomically,
)

SECRET = "Hunter2-not-for-logs"

SAMPLE = (
    ";; PgBouncer config, hand-edited\n"
    "[databases]\n"
    "; the main app\n"
    "appdb = host=10.0.0.5 port=5432 dbname=app pool_size=20  \n"
    "  reports=host=/var/run/postgresql dbname=reports connect_query='SELECT ''x'' ; # [y]'\n"
    "%include /etc/pgbouncer/databases.d/extra.ini\n"
    "* = host=fallback.internal\n"
    "\n"
    "; ---- users ----\n"
    "[users]\n"
    "bob = pool_mode=session\n"
    "\n"
    "[pgbouncer]\n"
    "listen_port = 6432\n"
    "auth_file = /etc/pgbouncer/userlist.txt\n"
)

NEW = DatabaseEntry(name="new_db", host="db.internal", port=5433, dbname="new", pool_size=7, pool_mode="transaction")


def test_parse_keeps_every_byte_of_comments_includes_and_other_sections() -> None:
    odd = SAMPLE.replace("\n", "\r\n") + "no newline at the end"
    assert parse(SAMPLE).text == SAMPLE
    assert parse(odd).text == odd


def test_databases_reads_entries_quoted_values_and_skips_the_fallback() -> None:
    found = parse(SAMPLE).databases()
    assert list(found) == ["appdb", "reports"]
    assert found["appdb"] == DatabaseEntry(name="appdb", host="10.0.0.5", port=5432, dbname="app", pool_size=20)
    assert found["reports"].extra == {"connect_query": "SELECT 'x' ; # [y]"}


def test_with_entry_replaces_only_that_line_and_keeps_its_key_order() -> None:
    ini = parse(SAMPLE)
    text = ini.with_entry(ini.databases()["appdb"].merged(pool_size=30, pool_mode="session"))
    before, after = SAMPLE.splitlines(keepends=True), text.splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [3]
    assert after[3] == "appdb = host=10.0.0.5 port=5432 dbname=app pool_size=30 pool_mode=session\n"


def test_with_entry_appends_after_the_last_entry_of_the_databases_section() -> None:
    text = parse(SAMPLE).with_entry(NEW)
    line = render_line(NEW) + "\n"
    assert text == SAMPLE.replace("* = host=fallback.internal\n", "* = host=fallback.internal\n" + line)
    assert parse(text).databases()["new_db"] == NEW


def test_with_entry_adds_a_databases_section_when_there_is_none() -> None:
    text = parse("[pgbouncer]\nlisten_port = 6432").with_entry(NEW)
    assert text == f"[pgbouncer]\nlisten_port = 6432\n[databases]\n{render_line(NEW)}\n"


def test_with_entry_keeps_crlf_line_endings() -> None:
    crlf = SAMPLE.replace("\n", "\r\n")
    text = parse(crlf).with_entry(NEW)
    assert f"{render_line(NEW)}\r\n" in text
    assert text.replace(f"{render_line(NEW)}\r\n", "") == crlf


def test_without_removes_the_line_and_nothing_else() -> None:
    assert parse(SAMPLE).without("appdb") == SAMPLE.replace(
        "appdb = host=10.0.0.5 port=5432 dbname=app pool_size=20  \n", ""
    )


def test_without_an_unknown_database_raises_key_error() -> None:
    with pytest.raises(KeyError):
        parse(SAMPLE).without("nope")


def test_render_line_quotes_spaces_and_doubles_single_quotes() -> None:
    entry = DatabaseEntry(name="x", dbname="my db", user="o'brien", extra={"application_name": "a=b;c"})
    assert render_line(entry) == "x = dbname='my db' user='o''brien' application_name='a=b;c'"
    assert parse_entry("x", render_line(entry).split(" = ", 1)[1]) == entry


def test_password_is_hidden_from_repr_and_masked_lines() -> None:
    entry = DatabaseEntry(name="x", user="app", password=SECRET)
    assert SECRET not in repr(entry) and SECRET not in str(entry)
    assert render_line(entry, masked=True) == "x = user=app password='***'"
    assert SECRET in render_line(entry)  # the file itself needs it


def test_merged_validates_the_changes() -> None:
    with pytest.raises(InvalidSetting) as caught:
        NEW.merged(pool_size=0)
    assert caught.value.field == "pool_size"


BAD_VALUES = [
    ("name", "has space"),
    ("name", "pgbouncer"),
    ("name", "x" * 64),
    ("name", f'"{SECRET}"'),
    ("host", f"bad host {SECRET}"),
    ("host", "999.1.1.1"),
    ("host", "-leading.example.com"),
    ("port", 0),
    ("port", 65536),
    ("port", "5432"),
    ("port", True),
    ("dbname", ""),
    ("dbname", f"two\nlines{SECRET}"),
    ("dbname", "é" * 32),
    ("user", f"tab\t{SECRET}"),
    ("password", f"{SECRET}\n"),
    ("pool_size", 0),
    ("pool_size", 10_001),
    ("pool_size", f"banana{SECRET}"),
    ("reserve_pool", -1),
    ("max_db_connections", -1),
    ("pool_mode", f"sometimes{SECRET}"),
    ("extra.min_pool_size", {"min_pool_size": f"banana{SECRET}"}),
    ("extra.connect_query", {"connect_query": f"SELECT 1\nSELECT {SECRET}"}),
    ("extra.pool_size", {"pool_size": "5"}),
    ("extra", {"Bad Key": "1"}),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_invalid_value_is_rejected_naming_the_field_without_echoing_it(field: str, value: object) -> None:
    key = "extra" if field.startswith("extra") else field
    data: dict[str, object] = {"name": "ok", key: value}
    with pytest.raises(InvalidSetting) as caught:
        DatabaseEntry(**data)
    assert caught.value.field == field
    assert caught.value.allowed
    assert SECRET not in str(caught.value) and caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unknown_field_is_rejected_naming_it() -> None:
    with pytest.raises(InvalidSetting) as caught:
        DatabaseEntry(name="ok", pool="x")
    assert caught.value.field == "pool"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("pool_size=banana", "pool_size"),
        ("port=5432abc", "port"),
        ("host='unterminated", "databases.x.host"),
        ("=5", "databases.x"),
        ("pool_mode=''", "pool_mode"),
    ],
)
def test_parse_entry_rejects_what_pgbouncer_would_misread(value: str, field: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        parse_entry("x", value)
    assert caught.value.field == field


def test_parse_entry_accepts_pool_mode_in_any_case_like_pgbouncer() -> None:
    assert parse_entry("x", "pool_mode=Transaction").pool_mode == "transaction"


_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses().map(str),
    st.sampled_from(["/var/run/postgresql", "/tmp", "@abstract"]),
)
_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20)
_IDENT = _TEXT.filter(lambda s: len(s.encode()) <= 63)
_ENTRIES = st.builds(
    DatabaseEntry,
    name=st.from_regex(r"[A-Za-z0-9_.-]{1,63}", fullmatch=True).filter(lambda n: n != "pgbouncer"),
    host=st.none() | st.lists(_HOST, min_size=1, max_size=3).map(",".join),
    port=st.none() | st.integers(1, 65535),
    dbname=st.none() | _IDENT,
    user=st.none() | _IDENT,
    password=st.none() | _TEXT,
    pool_size=st.none() | st.integers(1, 10_000),
    reserve_pool=st.none() | st.integers(0, 10_000),
    max_db_connections=st.none() | st.integers(0, 100_000),
    pool_mode=st.none() | st.sampled_from(["session", "transaction", "statement"]),
    extra=st.dictionaries(st.sampled_from(["application_name", "connect_query", "client_encoding"]), _TEXT)
    | st.integers(0, 10_000).map(lambda n: {"min_pool_size": str(n)}),
)


@given(_ENTRIES)
def test_any_valid_entry_renders_and_parses_back_equal(entry: DatabaseEntry) -> None:
    assert parse(SAMPLE).with_entry(entry).count("\n") == SAMPLE.count("\n") + 1
    assert parse(parse(SAMPLE).with_entry(entry)).databases()[entry.name] == entry


@given(_ENTRIES, st.lists(st.sampled_from(SAMPLE.splitlines(keepends=True)), max_size=12))
def test_with_entry_leaves_every_other_line_byte_identical(entry: DatabaseEntry, body: list[str]) -> None:
    original = "[databases]\n" + "".join(body)
    ini = parse(original)
    existed = ini.line(entry.name) is not None
    lines, edited = original.splitlines(keepends=True), ini.with_entry(entry).splitlines(keepends=True)
    if existed:
        assert sum(a != b for a, b in zip(lines, edited, strict=True)) <= 1
    else:
        edited.remove(render_line(entry) + "\n")
        assert edited == lines


@given(st.text(max_size=70) | st.from_regex(r"[A-Za-z0-9_.-]{1,70}", fullmatch=True))
def test_name_is_accepted_exactly_when_pgbouncer_can_load_it(name: str) -> None:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", name) and name != "pgbouncer":
        assert DatabaseEntry(name=name).name == name
    else:
        with pytest.raises(InvalidSetting):
            DatabaseEntry(name=name)


@given(st.integers().filter(lambda n: not 1 <= n <= 65535), st.integers().filter(lambda n: not 1 <= n <= 10_000))
def test_out_of_range_numbers_are_rejected(port: int, pool_size: int) -> None:
    with pytest.raises(InvalidSetting):
        DatabaseEntry(name="x", port=port)
    with pytest.raises(InvalidSetting):
        DatabaseEntry(name="x", pool_size=pool_size)


def _postgres_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return os.getuid(), os.getgid()
    return entry.pw_uid, entry.pw_gid


def test_write_atomically_keeps_owner_and_mode_and_backs_up_the_old_text(tmp_path: Path) -> None:
    path = tmp_path / "pgbouncer.ini"
    path.write_text(SAMPLE)
    uid, gid = _postgres_ids() if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, uid, gid)
    os.chmod(path, 0o640)
    backup = write_atomically(path, parse(SAMPLE).with_entry(NEW), expected=SAMPLE)
    for written in (path, backup):
        info = written.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, 0o640)
    assert backup == tmp_path / "pgbouncer.ini.bak" and backup.read_text() == SAMPLE
    assert load(path).databases()["new_db"] == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgbouncer.ini", "pgbouncer.ini.bak"]  # no temp left


def test_write_atomically_refuses_when_the_file_changed_since_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "pgbouncer.ini"
    path.write_text(SAMPLE + "; someone else\n")
    with pytest.raises(ConcurrentEdit):
        write_atomically(path, "[databases]\n", expected=SAMPLE)
    assert path.read_text() == SAMPLE + "; someone else\n" and not (tmp_path / "pgbouncer.ini.bak").exists()


def test_restore_backup_puts_the_previous_bytes_back(tmp_path: Path) -> None:
    path = tmp_path / "pgbouncer.ini"
    path.write_bytes(SAMPLE.encode() + b"; latin-1 \xe9\r\n")
    original = path.read_bytes()
    write_atomically(path, load(path).with_entry(NEW))
    restore_backup(path)
    assert path.read_bytes() == original


def test_write_atomically_edits_the_target_of_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.ini"
    real.write_text(SAMPLE)
    link = tmp_path / "pgbouncer.ini"
    link.symlink_to(real)
    write_atomically(link, load(link).with_entry(NEW))
    assert link.is_symlink() and "new_db" in load(real).databases()
    assert (tmp_path / "real.ini.bak").read_text() == SAMPLE
