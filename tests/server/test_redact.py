"""One redaction function: known secrets, URI passwords, password keys, bearer tokens, log records."""

from __future__ import annotations

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
