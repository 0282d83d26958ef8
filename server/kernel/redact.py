"""The one redaction function every result, error, log line and audit line passes through.

Two layers: values known to be secret (configured tokens, AK/SK, DSN passwords, and every password a
provider returned) are replaced wherever they appear, and shapes that carry secrets (`password` keys, the
password part of a URI, `Bearer …`, `Signature=…`) are masked even when their value was never seen before.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TypeVar, cast

__all__ = ["MASK", "RedactingFilter", "Redactor"]

MASK = "***"

# Keys whose values are secrets whatever they contain. `uri` is handled by the URI pattern instead, so host,
# port and database stay readable.
_SECRET_KEYS = frozenset(
    {
        "password",
        "secret",
        "secret_key",
        "sk",
        "token",
        "auth_token",
        "access_token",
        "access_key",
        "access_cert",
        "private_key",
        "authorization",
        "x-auth-token",
        "confirm_secret",
        "dsn_password",
    }
)
_QUOTED_SECRET_KEY = re.compile("|".join(re.escape(f'"{k}"') for k in sorted(_SECRET_KEYS)))
# Only these may pass through results when the operator allows secrets (never logs or audit).
_CONNECTION_KEYS = frozenset({"password"})

_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(signature=)[0-9a-f]{16,}"),
    re.compile(r"(?i)(x-auth-token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)
# Every shape below contains one of these; strings without any skip the patterns (most strings in results).
_SHAPE_HINTS = ("://", "bearer", "signature=", "x-auth-token", "password")
_SHAPE_HINT = re.compile("(?i)" + "|".join(re.escape(h) for h in _SHAPE_HINTS))
_PASSWORD_PATTERN = re.compile(r"(?i)(password[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]+")

T = TypeVar("T")


class Redactor:
    """Knows the operator's secrets (tokens, SK, DSN passwords) and masks them with every credential shape.

    Passwords a provider returns are not "known": they are masked by shape (a `password` key, a URI's
    password part), which is what `--allow-secrets` relaxes for results. Thread-safe: log records arrive
    from any thread.
    """

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        # The same secrets as they appear inside JSON text (quotes, backslashes, control characters escaped).
        self._json_pattern: re.Pattern[str] | None = None
        self.add(*known)

    def add(self, *secrets: str | None) -> None:
        """Remember secret values (short values are ignored: masking `ab` everywhere would garble text)."""
        fresh = {s for s in secrets if s and len(s) >= 6 and s not in self._known}
        if not fresh:
            return
        with self._lock:
            self._known |= fresh
            ordered = sorted(self._known, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            escaped = {json.dumps(s, ensure_ascii=False)[1:-1] for s in ordered}
            self._json_pattern = re.compile("|".join(re.escape(s) for s in sorted(escaped, key=len, reverse=True)))

    def clean(self, json_text: str) -> bool:
        """True when `value(data)` would return `data` unchanged, judged from `json_text`, the JSON of `data`
        (`json.dumps(data, ensure_ascii=False)`, any separators): no known secret, no credential shape and no
        secret key occurs in it. JSON escapes character by character, so a secret or shape inside any string or
        key is still a substring of the text (the escaped forms of the known secrets are searched for too); a
        false alarm only costs the full pass. Used by reads to skip the walk over a result that cannot hold a
        secret (issue 23); tests/server/test_redact.py checks it against the full pass."""
        pattern = self._json_pattern
        if pattern is not None and pattern.search(json_text) is not None:
            return False
        lowered = json_text.lower()
        # On ASCII text, lowering then matching case-sensitively finds exactly what the case-insensitive pattern
        # finds, several times faster; other text keeps the pattern itself (it folds more than str.lower does).
        if json_text.isascii():
            if any(hint in lowered for hint in _SHAPE_HINTS):
                return False
        elif _SHAPE_HINT.search(json_text) is not None:
            return False
        # Keys are compared lowered, as `_walk` does (str.lower maps the Kelvin sign to k, for one).
        return _QUOTED_SECRET_KEY.search(lowered) is None

    def text(self, value: str, *, allow_connection_secrets: bool = False) -> str:
        """Mask known secrets and credential shapes; connection passwords stay only when allowed."""
        pattern = self._pattern
        if pattern is not None:
            value = pattern.sub(MASK, value)
        if _SHAPE_HINT.search(value) is None:
            return value  # the common case: no credential shape can be in it, so the patterns below cannot match
        for rx in _CREDENTIAL_PATTERNS:
            value = rx.sub(lambda m: m.group(1) + MASK, value)
        if not allow_connection_secrets:
            value = _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
            value = _PASSWORD_PATTERN.sub(lambda m: m.group(1) + MASK, value)
        return value

    def value(self, data: T, *, allow_connection_secrets: bool = False) -> T:
        """Redact a JSON-like structure. With `allow_connection_secrets`, connection passwords and URIs pass."""
        return cast(T, self._walk(data, allow_connection_secrets))

    def _walk(self, data: object, allow: bool) -> object:
        if isinstance(data, str):
            return self.text(data, allow_connection_secrets=allow)
        if isinstance(data, Mapping):
            out: dict[object, object] = {}
            for key, item in data.items():
                lowered = str(key).lower()
                if lowered in _SECRET_KEYS and item not in (None, "") and not (allow and lowered in _CONNECTION_KEYS):
                    out[key] = MASK
                else:
                    out[key] = self._walk(item, allow)
            return out
        if isinstance(data, list):
            return [self._walk(item, allow) for item in data]
        if isinstance(data, tuple):
            return tuple(self._walk(item, allow) for item in data)
        return data


class RedactingFilter(logging.Filter):
    """Masks every log record, including its arguments and formatted traceback, on the root handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = self._redactor.text(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = self._redactor.text(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
