"""One redaction function: known secrets, URI passwords, password keys, bearer tokens, log records."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolpilot.server.kernel.redact import MASK, RedactingFilter, Redactor


def test_text_masks_uri_password_and_keeps_host() -> None:
    out = Redactor().text("postgresql://doadmin:s3cr3tpw@db.example:25061/web?sslmode=require")
    assert out == f"postgresql://doadmin:{MASK}@db.example:25061/web?sslmode=require"


def test_known_secrets_are_masked_even_when_connection_secrets_are_allowed() -> None:
    r = Redactor(["dop_v1_abcdef123456"])
    assert r.text("token dop_v1_abcdef123456 used", allow_connection_secrets=True) == f"token {MASK} used"


def test_value_masks_password_keys_unless_allowed() -> None:
    data = {"user": "app", "password": "pw-123456", "connection": {"uri": "postgres://app:pw-123456@h/db"}}
    assert Redactor().value(data) == {
        "user": "app",
        "password": MASK,
        "connection": {"uri": f"postgres://app:{MASK}@h/db"},
    }
    assert Redactor().value(data, allow_connection_secrets=True) == data


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=" + "a" * 64,
        '{"X-Auth-Token": "MIIabc"}',
        "password=hunter22",
    ],
)
def test_credential_shapes_are_masked(text: str) -> None:
    out = Redactor().text(text)
    assert MASK in out
    for secret in ("abc.def-ghi", "a" * 64, "MIIabc", "hunter22"):
        assert secret not in out


def test_logging_filter_masks_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling %s", ("postgres://u:pw-99999@h/d",), None)
    try:
        raise RuntimeError("failed with sentinel-secret-42")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter(Redactor(["sentinel-secret-42"])).filter(record)
    assert "pw-99999" not in record.getMessage()
    assert record.exc_text is not None and "sentinel-secret-42" not in record.exc_text


_PIECES = st.sampled_from(
    [
        "postgresql://",
        "u",
        ":",
        "pw-1234567",
        "@",
        "h/db",
        "Bearer ",
        "tok.en",
        "password=",
        "Signature=",
        "a" * 20,
        "X-Auth-Token: ",
        " ",
        "\n",
        '"',
        "é",
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join))
@settings(max_examples=300, deadline=None)
def test_fast_path_never_changes_what_the_patterns_would_mask(text: str) -> None:
    import poolpilot.server.kernel.redact as redact

    full = text
    for rx in redact._CREDENTIAL_PATTERNS:
        full = rx.sub(lambda m: m.group(1) + MASK, full)
    full = redact._URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", full)
    full = redact._PASSWORD_PATTERN.sub(lambda m: m.group(1) + MASK, full)
    assert Redactor().text(text) == full


# A known secret with characters JSON escapes, so `clean` must find it in its escaped form.
_ESCAPED_SECRET = 'q"u\\o\nte-secret'
_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.lists(_PIECES | st.just(_ESCAPED_SECRET), max_size=6).map("".join)
)
_KEYS = st.sampled_from(
    ["user", "uri", "password", "PassWord", "token", "confirm_token", "s\u212a", "SK", "x-auth-token", "note", "é"]
)
_JSON = st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=16
)


@given(_JSON, st.booleans())
@settings(max_examples=400, deadline=None)
def test_clean_json_means_the_full_pass_would_change_nothing(data: object, allow: bool) -> None:
    redactor = Redactor(["pw-1234567", _ESCAPED_SECRET])
    for separators in ((",", ":"), (", ", ": ")):
        if redactor.clean(json.dumps(data, ensure_ascii=False, separators=separators)):
            assert redactor.value(data, allow_connection_secrets=allow) == data


def test_clean_refuses_escaped_secrets_shapes_and_secret_keys() -> None:
    redactor = Redactor([_ESCAPED_SECRET])
    assert redactor.clean(json.dumps({"rows": [{"name": "web", "size": 3}]}))
    assert not redactor.clean(json.dumps({"note": f"was {_ESCAPED_SECRET}"}, ensure_ascii=False))
    assert not redactor.clean(json.dumps({"uri": "postgres://u:p@h/db"}))
    assert not redactor.clean(json.dumps({"s\u212a": "abc"}, ensure_ascii=False))  # Kelvin sign lowers to k
