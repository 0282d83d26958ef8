"""SDK-HMAC-SHA256 request signing for Huawei Cloud, client and server side, standard library only.

Written from the reference SIGNING.md (huaweicloudsdkcore 3.1.219 `Signer`, `BasicCredentials.sign_request`) and proven
against the SDK's own output in `tests/fixtures/taurusdb/signing-vectors.json`:

    CanonicalRequest = METHOD \\n uri/ \\n query \\n name:value lines \\n \\n signed;headers \\n payload hash
    StringToSign     = "SDK-HMAC-SHA256" \\n X-Sdk-Date \\n hex(sha256(CanonicalRequest))
    Authorization    = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=" + hex(hmac_sha256(SK, StringToSign))

`sign_request` is what a client does; `verify_request` is what the sandbox (standing in for Huawei's API gateway) does
with the bytes that arrived, so a request signed by either our client or Huawei's SDK can be checked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from calendar import timegm
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, quote, unquote

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "payload_hash",
    "sdk_date",
    "sign_request",
    "signed_header_names",
    "string_to_sign",
    "verify_request",
]

ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DATE_SHAPE = re.compile(r"\d{8}T\d{6}Z")
_AUTHORIZATION = re.compile(
    r"SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)"
)
# The signer leaves the payload unsigned unless the body is JSON or BSON (SIGNING.md section 1).
_HASHED_CONTENT_TYPES = ("application/json", "application/bson")

_SortKey = tuple[str, int, float | str | tuple[str, ...]]


def _encode(text: str) -> str:
    # quote() always keeps A-Z a-z 0-9 - _ . ~ and writes upper-case %XX: exactly the SDK's url_encode(safe="~").
    return quote(text, safe="~")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalar_key(value: object) -> tuple[int, float | str]:
    # Numbers sort numerically and strings by code point, like Python's own sort that the SDK applies to raw values.
    if isinstance(value, int | float):
        return (0, value)
    return (1, _text(value))


def _pair_key(pair: tuple[str, object]) -> _SortKey:
    key, value = pair
    if isinstance(value, list | tuple):
        return (key, 2, tuple(_text(item) for item in sorted(value, key=_scalar_key)))
    rank, scalar = _scalar_key(value)
    return (key, rank, scalar)


def canonical_uri(path: str) -> str:
    """Decode the path, re-encode each segment, and end it with "/" (the wire path keeps no trailing slash)."""
    # Decoding before splitting is the SDK's order: "%2F" inside a segment becomes a real "/" (vector
    # path-percent-encoding), so the canonical URI cannot tell "a%2Fb" from "a/b".
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Sequence[tuple[str, object]]) -> str:
    """Sorted, encoded query string; the SDK sends this very string as the request's query."""
    # Sorted on the raw key then the raw value, before encoding: "name=z" precedes "name=%C3%A9" (vector
    # query-edge-cases). A list value contributes one k=v per element, elements sorted.
    parts: list[str] = []
    for key, value in sorted(params, key=_pair_key):
        values = sorted(value, key=_scalar_key) if isinstance(value, list | tuple) else [value]
        parts.extend(f"{_encode(key)}={_encode(_text(item))}" for item in values)
    return "&".join(parts)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased, sorted names of the headers to sign: every header whose name has no "_"."""
    return sorted({name.lower() for name in headers if "_" not in name})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def payload_hash(body: bytes | None, headers: Mapping[str, str]) -> str:
    """The last line of the canonical request: empty hash, a declared X-Sdk-Content-Sha256, or SHA-256 of the body."""
    if not body:
        return EMPTY_SHA256
    declared = _header(headers, "x-sdk-content-sha256")
    if declared is not None:
        return declared
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, object]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_sha256: str,
) -> str:
    """The six-part canonical request; every name in `signed_headers` must be present in `headers`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    # Values are trimmed at both ends only; inner whitespace is signed as sent.
    header_block = "".join(f"{name}:{lowered[name.lower()].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_block,
            ";".join(signed_headers),
            payload_sha256,
        ]
    )


def string_to_sign(canonical: str, date: str) -> str:
    """Algorithm, X-Sdk-Date and the hex SHA-256 of the canonical request, one per line."""
    return f"{ALGORITHM}\n{date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def _signature(sk: str, canonical: str, date: str) -> str:
    # No key derivation or credential scope: the secret key itself is the HMAC key.
    return hmac.new(sk.encode("utf-8"), string_to_sign(canonical, date).encode("utf-8"), hashlib.sha256).hexdigest()


def sdk_date(ts: float) -> str:
    """Format a POSIX time as X-Sdk-Date (UTC, e.g. 20250904T080102Z)."""
    return time.strftime(_DATE_FORMAT, time.gmtime(ts))


def _parse_sdk_date(value: str) -> float | None:
    if not _DATE_SHAPE.fullmatch(value):
        return None
    try:
        return float(timegm(time.strptime(value, _DATE_FORMAT)))
    except ValueError:
        return None


def sign_request(
    method: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, object]],
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    ak: str,
    sk: str,
    sdk_date: str | None = None,
    now: Callable[[], float] = time.time,
) -> dict[str, str]:
    """Sign a request the way huaweicloudsdkcore does and return only the headers to add to `headers`.

    `path` is the path as it goes on the wire (segments already percent-encoded); the query to send is
    `canonical_query(query)`. An X-Sdk-Date already in `headers` wins over `sdk_date`, which wins over `now()`.
    Headers such as X-Project-Id or X-Security-Token must be in `headers` already so that they are signed.
    """
    present = {name.lower() for name in headers}
    if "authorization" in present:
        # The SDK silently skips signing in this case; for our own client that would only hide a bug.
        raise ValueError("request already carries an Authorization header")
    added: dict[str, str] = {}
    if "host" not in present:
        added["Host"] = host
    date = _header(headers, "x-sdk-date")
    if date is None:
        date = sdk_date if sdk_date is not None else time.strftime(_DATE_FORMAT, time.gmtime(now()))
        added["X-Sdk-Date"] = date
    if _parse_sdk_date(date) is None:
        raise ValueError(f"X-Sdk-Date must look like 20250904T080102Z, got {date!r}")
    content_type = _header(headers, "content-type")
    if (
        content_type is not None
        and not content_type.lower().startswith(_HASHED_CONTENT_TYPES)
        and "x-sdk-content-sha256" not in present
    ):
        added["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
    everything = {**headers, **added}
    signed = signed_header_names(everything)
    canonical = canonical_request(method, path, query, everything, signed, payload_hash(body, everything))
    added["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed)}, Signature={_signature(sk, canonical, date)}"
    )
    return added


def _wire_text(value: str) -> str:
    # The SDK signs the text, then sends it UTF-8 encoded; servers hand header bytes back decoded as latin-1.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_for: Callable[[str], str | None],
    now: float,
    max_skew_s: float = 900,
) -> str | None:
    """Check a received request's signature; None when it is valid, else a short reason for the 401 message.

    Canonicalises from what arrived: the signed-header list of the Authorization header, the raw (still encoded)
    path, the raw query re-parsed, sorted and re-encoded, trimmed header values and the body bytes.
    """
    lowered = {name.lower(): _wire_text(value) for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(lowered.get("authorization", "").strip())
    if match is None:
        return "malformed Authorization header"
    ak, signed_list, signature = match.groups()
    secret = secret_for(ak)
    if secret is None:
        return "unknown access key"
    date = lowered.get("x-sdk-date", "")
    signed_at = _parse_sdk_date(date.strip())
    if signed_at is None:
        return "missing or malformed X-Sdk-Date header"
    # APIG rejects X-Sdk-Date more than 15 minutes from its own clock (apig-faq-0009); report by how much.
    if abs(now - signed_at) > max_skew_s:
        return f"signature expired: X-Sdk-Date {round(abs(now - signed_at) / 60)} minutes off"
    signed = signed_list.split(";")
    missing = [name for name in signed if name.lower() not in lowered]
    if missing:
        return f"signed header missing: {missing[0]}"
    declared = lowered.get("x-sdk-content-sha256")
    if body and declared is not None and declared != UNSIGNED_PAYLOAD and declared != hashlib.sha256(body).hexdigest():
        return "signature mismatch"
    # parse_qsl decodes "+" as a space: a client following the SDK never sends a bare "+", it sends %2B.
    query = parse_qsl(raw_query, keep_blank_values=True)
    canonical = canonical_request(
        method, raw_path.split("?", 1)[0], query, lowered, signed, payload_hash(body, lowered)
    )
    if not hmac.compare_digest(_signature(secret, canonical, date.strip()), signature):
        return "signature mismatch"
    return None
