"""The kernel's text rules: provider values quoted for prose, hidden characters escaped, the name rule."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolpilot.server.kernel.text import LIMIT, check_name, escape, label, name_problem, quote

HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}
# Every category, with the hidden ones (and lone surrogates) drawn often.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=120) | st.text(
    st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs", "Ll", "Po"]), max_size=40
)


def _hidden(text: str) -> bool:
    return any(unicodedata.category(ch) in HIDDEN for ch in text)


@given(ANY_TEXT)
def test_quote_is_json_that_reads_back_as_the_value_with_nothing_hidden(value: str) -> None:
    shown = quote(value)
    assert not _hidden(shown)
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        # JSON cannot spell two lone surrogates side by side (`\ud800\udc00` reads back as one character);
        # they are shown escaped, which is all that matters for text no provider can send.
        return
    if len(value) <= LIMIT:
        assert json.loads(shown) == value
    else:
        assert shown.endswith('"…') and json.loads(shown[:-1]) == value[:LIMIT]


@given(ANY_TEXT)
def test_escape_leaves_nothing_hidden_and_printable_text_alone(value: str) -> None:
    assert not _hidden(escape(value))
    if value.isprintable():
        assert escape(value) == value


@given(ANY_TEXT)
def test_name_rule_refuses_exactly_dot_segments_and_hidden_characters(value: str) -> None:
    refused = value in (".", "..") or _hidden(value)
    assert (name_problem(value) is not None) == refused
    if refused:
        with pytest.raises(ValueError) as caught:
            check_name(value)
        assert value not in str(caught.value) or value in (".", "..")
    else:
        assert check_name(value) == value


def test_quote_shows_the_classic_spoofs_as_escapes() -> None:
    assert quote("web\u2028Impact: none") == '"web\\u2028Impact: none"'
    assert quote("a\u202eb\u200bc\ufeff") == '"a\\u202eb\\u200bc\\ufeff"'
    assert quote('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert quote("\U000e0041") == '"\\udb40\\udc41"'  # a tag character (Cf) beyond the BMP: a JSON surrogate pair
    assert quote("x" * 100, limit=64) == '"' + "x" * 64 + '"…'


def test_label_keeps_plain_field_names_and_quotes_the_rest() -> None:
    assert label("app.pool_size") == "app.pool_size"
    assert label("web\u2028x") == '"web\\u2028x"'
