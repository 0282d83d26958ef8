"""The `[pgbouncer]` section writer behind pgbouncer_set_config's `persist` (no PgBouncer needed)."""

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolpilot.tools.pgbouncer.ini import InvalidSetting, parse
from poolpilot.tools.pgbouncer.inisettings import IncludeConflict, check_value, set_in_section

SAMPLE = (
    ";; hand-edited; keep this comment\n"
    "[databases]\n"
    "appdb = host=10.0.0.5 dbname=app connect_query='SELECT 1 ; # [x]'\n"
    "\n"
    "[pgbouncer]\n"
    "listen_port = 6432\n"
    "server_idle_timeout = 11\n"
    "  server_idle_timeout   =   22   \n"
    "; trailing comment of the section\n"
    "\n"
    "; leads [users]\n"
    "[users]\n"
    "bob = pool_mode=session\n"
)
BASE = Path("/nonexistent")


def _edit(text: str, key: str, value: str) -> str:
    return set_in_section(parse(text), key, value, base=BASE).text


def _effective(text: str, key: str) -> str | None:
    """What PgBouncer loads for `key`: the last line for it in [pgbouncer] (checked on 1.18 and 1.24)."""
    found = [x.value for x in parse(text).lines if x.kind == "entry" and x.section == "pgbouncer" and x.key == key]
    return found[-1] if found else None


def test_set_in_section_replaces_the_last_line_for_the_key_keeping_its_indent() -> None:
    edit = set_in_section(parse(SAMPLE), "server_idle_timeout", "33", base=BASE)
    assert edit.text == SAMPLE.replace("  server_idle_timeout   =   22   \n", "  server_idle_timeout = 33\n")
    assert (edit.line_before, edit.line_after, edit.line_number) == (
        "  server_idle_timeout   =   22   ",
        "server_idle_timeout = 33",
        8,
    )


def test_set_in_section_appends_after_the_sections_last_setting_before_the_next_sections_comments() -> None:
    edit = set_in_section(parse(SAMPLE), "stats_period", "45", base=BASE)
    assert edit.text == SAMPLE.replace("   22   \n", "   22   \nstats_period = 45\n")
    assert edit.line_before is None and edit.line_number == 9


def test_set_in_section_adds_the_section_when_missing_and_keeps_crlf_and_a_missing_last_newline() -> None:
    text = "[databases]\r\na = host=x\r\n; no newline at the end"
    edit = set_in_section(parse(text), "max_client_conn", "300", base=BASE)
    assert edit.text == text + "\r\n[pgbouncer]\r\nmax_client_conn = 300\r\n"
    assert edit.line_number == 5
    crlf = _edit(SAMPLE.replace("\n", "\r\n"), "listen_port", "7000")
    assert crlf == SAMPLE.replace("\n", "\r\n").replace("listen_port = 6432", "listen_port = 7000")


def test_set_in_section_refuses_an_include_after_the_line_that_sets_the_key(tmp_path: Path) -> None:
    (tmp_path / "over.ini").write_text("server_idle_timeout = 99\n")
    (tmp_path / "other.ini").write_text("listen_addr = 127.0.0.1\n")
    (tmp_path / "nested.ini").write_text("%include over.ini\n")
    (tmp_path / "section.ini").write_text("[databases]\n")
    cases = {
        "%include over.ini\n": "also set",  # after the line: it would win
        "%include nested.ini\n": "also set",  # nested includes are followed
        "%include missing.ini\n": "cannot be read",
    }
    for include, reason in cases.items():
        text = SAMPLE.replace("[users]\n", "[users]\n" + include)
        with pytest.raises(IncludeConflict, match=reason):
            set_in_section(parse(text), "server_idle_timeout", "33", base=tmp_path)
    before = SAMPLE.replace("listen_port = 6432\n", "listen_port = 6432\n%include over.ini\n%include other.ini\n")
    edited = set_in_section(parse(before), "server_idle_timeout", "33", base=tmp_path).text  # before it: ours wins
    assert _effective(edited, "server_idle_timeout") == "33"
    switching = SAMPLE.replace("listen_port = 6432\n", "%include section.ini\n")
    with pytest.raises(IncludeConflict, match="switches the section"):
        set_in_section(parse(switching), "server_idle_timeout", "33", base=tmp_path)


def test_set_in_section_follows_an_include_loop_only_to_a_clear_refusal(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("%include b.ini\n")
    (tmp_path / "b.ini").write_text("%include a.ini\n")
    with pytest.raises(IncludeConflict, match="too deep"):
        set_in_section(parse(SAMPLE + "%include a.ini\n"), "stats_period", "1", base=tmp_path)


HOSTILE = ["30\n[databases]", "30\r", "3\x000", "3\u20280", "3\u20290", "3\u00850", "3\u200b0", "[x", "1 ; x"]
HOSTILE += ["1 # x", " 30", "30\t", "3\ud8000"]


@pytest.mark.parametrize("value", HOSTILE)
def test_check_value_refuses_what_could_end_hide_or_start_a_line_naming_the_field_not_the_value(value: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        check_value(value)
    assert caught.value.field == "value" and value not in str(caught.value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40), st.sampled_from(["listen_port", "server_idle_timeout", "stats_period"]))
def test_any_unicode_value_is_refused_or_written_as_one_line_that_reads_back(value: str, key: str) -> None:
    try:
        edit = set_in_section(parse(SAMPLE), key, value, base=BASE)
    except InvalidSetting as exc:
        assert exc.field == "value"
        hostile = any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") or c in "[;#" for c in value)
        assert hostile or value != value.strip()
        return
    # One line changed or added, by every notion of a line (str.splitlines also breaks at U+2028, U+0085, ...).
    old, new = SAMPLE.splitlines(keepends=True), edit.text.splitlines(keepends=True)
    assert edit.text.split("\n") == [*edit.text.splitlines(), ""]
    if edit.line_before is None:
        new.remove(edit.line_after + "\n")
        assert new == old
    else:
        assert sum(a != b for a, b in zip(old, new, strict=True)) <= 1
    assert _effective(edit.text, key) == value
    assert parse(edit.text).databases() == parse(SAMPLE).databases()
