"""Provider text kept as data, and the one name rule every tool argument that names something follows.

Names come from the provider (a pool someone else created) as well as from the model, and they end up in prose
a user or a model reads: the confirmation question, advice, prompts, error messages. A name holding U+2028
(line separator) or U+202E (right-to-left override) could add a line such as "Impact: none" to a question or
reorder it. So prose never holds a provider string as it is: `quote()` writes it JSON-style, with every
control, format and line-separator character as a visible escape, capped at 80 characters. Structured fields
keep the raw value (a client can compare it with what it sent).

Names given as arguments are stricter still (`check_name`): no Unicode Cc (controls), Cf (bidi overrides,
zero-width characters, BOM), Zl, Zp (line and paragraph separators) or Cs (lone surrogates, which no request
can carry), and never `.` or `..` as the whole name, which URL libraries and proxies treat as dot segments
(`/dbs/.` becomes `/dbs`, the collection) however carefully the rest is encoded.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["HIDDEN_CATEGORIES", "LIMIT", "check_name", "escape", "label", "name_problem", "quote", "shown"]

# What a reader cannot see, or what moves text around: never raw in prose, never in a name.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
LIMIT = 80  # characters of a provider value shown in prose (DECISIONS, round 2)
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escaped(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code > 0xFFFF:  # JSON spells these as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in HIDDEN_CATEGORIES


def escape(text: str) -> str:
    """`text` with every hidden character (HIDDEN_CATEGORIES) written as its JSON escape; nothing else changes.

    The last line of defence for composed prose (questions, error messages): a provider value that reached it
    without `quote()` still cannot add a line or reorder the text."""
    if text.isprintable():  # fast path: str.isprintable() is false for every hidden character
        return text
    return "".join(_escaped(ch) if _hidden(ch) else ch for ch in text)


def quote(value: object, limit: int = LIMIT) -> str:
    """A provider value for prose: JSON-style double quotes, `"` and `\\` and hidden characters escaped, at most
    `limit` characters of the value; a cut value ends in `…` after the closing quote (so it cannot be mistaken
    for part of the value)."""
    text = str(value)
    cut = len(text) > limit
    body = "".join(
        "\\" + ch if ch in '"\\' else _escaped(ch) if _hidden(ch) else ch for ch in (text[:limit] if cut else text)
    )
    return f'"{body}"' + ("…" if cut else "")


def shown(value: object) -> str:
    """A value for prose: strings quoted (`quote`), numbers, booleans and None as they print."""
    return quote(value) if isinstance(value, str) else str(value)


def label(value: str) -> str:
    """A field label for prose: as it is when it is plain ASCII (`size`, `app.pool_size`), else quoted (a label
    built from a provider name, such as a database name in a reload preview)."""
    return value if _LABEL.fullmatch(value) else quote(value)


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a name, without quoting it (it may be anything, even a secret); None when it can."""
    if value in (".", ".."):
        return "must not be '.' or '..' (dot segments)"
    if any(_hidden(ch) for ch in value):
        return "must not contain control, format (bidi, zero-width, BOM) or line/paragraph separator characters"
    return None


def check_name(value: str) -> str:
    """Pydantic `AfterValidator` for every name argument: raises `ValueError` naming the rule, never the value."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
