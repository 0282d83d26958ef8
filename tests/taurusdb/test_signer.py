"""The signer against every vector produced by the real huaweicloudsdkcore, plus sign/verify properties."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolpilot.tools.taurusdb.signer import (
    UNSIGNED_PAYLOAD,
    canonical_query,
    canonical_request,
    canonical_uri,
    payload_hash,
    sdk_date,
    sign_request,
    signed_header_names,
    string_to_sign,
    verify_request,
)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "taurusdb" / "signing-vectors.json"
AK = "HPUAEXAMPLEAK0000001"
SK = "exampleSecretKey0123456789abcdefghijklmn"
T0 = 1756972800.0  # 2025-09-04T08:00:00Z, the day of the vectors


class Vector(TypedDict, total=False):
    name: str
    ak: str
    sk: str
    method: str
    schema: str
    host: str
    resource_path: str
    query_params: list[tuple[str, object]]
    headers_given: dict[str, str]
    headers_added: dict[str, str]
    body: str | None
    sdk_date: str
    url: str
    project_id: str | None
    security_token: str | None
    canonical_request: str
    string_to_sign: str
    authorization: str
    wire_path: str
    wire_headers: dict[str, str]


def _vectors() -> list[Vector]:
    data: dict[str, list[Vector]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data["vectors"]


SIGNER_VECTORS = [v for v in _vectors() if "canonical_request" in v]
WIRE_VECTORS = [v for v in _vectors() if "wire_path" in v]


def _secret_for(ak: str) -> str | None:
    return SK if ak == AK else None


def _credential_headers(vector: Vector) -> dict[str, str]:
    # BasicCredentials adds these before the Signer runs, so they are signed (SIGNING.md section 1).
    extra: dict[str, str] = {}
    if vector.get("project_id"):
        extra["X-Project-Id"] = str(vector["project_id"])
    if vector.get("security_token"):
        extra["X-Security-Token"] = str(vector["security_token"])
    return extra


def _body(vector: Vector) -> bytes | None:
    body = vector.get("body")
    return None if body is None else body.encode("utf-8")


def _sign(vector: Vector) -> tuple[dict[str, str], dict[str, str]]:
    headers = {**vector["headers_given"], **_credential_headers(vector)}
    added = sign_request(
        vector["method"],
        vector["host"],
        vector["resource_path"],
        [(k, v) for k, v in vector["query_params"]],
        headers,
        _body(vector),
        ak=vector["ak"],
        sk=vector["sk"],
    )
    return headers, added


def test_vector_set_is_complete() -> None:
    assert len(SIGNER_VECTORS) == 15 and len(WIRE_VECTORS) == 2


@pytest.mark.parametrize("vector", SIGNER_VECTORS, ids=lambda v: v["name"])
def test_canonical_request_matches_sdk(vector: Vector) -> None:
    headers, added = _sign(vector)
    everything = {**headers, **added}
    everything.pop("Authorization")
    signed = signed_header_names(everything)
    query = [(k, v) for k, v in vector["query_params"]]
    canonical = canonical_request(
        vector["method"], vector["resource_path"], query, everything, signed, payload_hash(_body(vector), everything)
    )
    assert canonical == vector["canonical_request"]
    assert string_to_sign(canonical, vector["sdk_date"]) == vector["string_to_sign"]


@pytest.mark.parametrize("vector", SIGNER_VECTORS, ids=lambda v: v["name"])
def test_sign_request_adds_the_sdk_headers(vector: Vector) -> None:
    _, added = _sign(vector)
    assert added["Authorization"] == vector["authorization"]
    assert {**_credential_headers(vector), **added} == vector["headers_added"]


@pytest.mark.parametrize("vector", SIGNER_VECTORS, ids=lambda v: v["name"])
def test_canonical_query_is_the_sent_url(vector: Vector) -> None:
    query = canonical_query([(k, v) for k, v in vector["query_params"]])
    url = f"{vector['schema']}://{vector['host']}{vector['resource_path']}" + (f"?{query}" if query else "")
    assert url == vector["url"]


@pytest.mark.parametrize("vector", SIGNER_VECTORS, ids=lambda v: v["name"])
def test_verify_request_accepts_signer_vectors(vector: Vector) -> None:
    headers, added = _sign(vector)
    everything = {**headers, **added}
    query = canonical_query([(k, v) for k, v in vector["query_params"]])
    reason = verify_request(
        vector["method"],
        vector["resource_path"],
        query,
        everything,
        _body(vector) or b"",
        secret_for=_secret_for,
        now=T0,
        max_skew_s=86400 * 365,
    )
    assert reason is None


def _verify_wire(vector: Vector, headers: Mapping[str, str], body: bytes, method: str | None = None) -> str | None:
    parts = urlsplit(vector["wire_path"])
    return verify_request(
        method or vector["method"],
        parts.path,
        parts.query,
        headers,
        body,
        secret_for=_secret_for,
        now=T0 + 3600,  # the wire vectors were signed at 09:00:00Z
    )


@pytest.mark.parametrize("vector", WIRE_VECTORS, ids=lambda v: v["name"])
def test_verify_request_accepts_wire_capture(vector: Vector) -> None:
    assert _verify_wire(vector, vector["wire_headers"], (vector.get("body") or "").encode()) is None


@pytest.mark.parametrize("vector", WIRE_VECTORS, ids=lambda v: v["name"])
def test_verify_request_rejects_wire_capture_with_one_byte_changed(vector: Vector) -> None:
    body = (vector.get("body") or "").encode()
    assert _verify_wire(vector, vector["wire_headers"], body + b" ") == "signature mismatch"
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        assert _verify_wire(vector, vector["wire_headers"], flipped) == "signature mismatch"
    for name in ("User-Agent", "Host", "X-Project-Id", "Content-Type"):
        changed = {**vector["wire_headers"], name: vector["wire_headers"][name] + "x"}
        assert _verify_wire(vector, changed, body) == "signature mismatch", name
    assert _verify_wire(vector, vector["wire_headers"], body, method="DELETE") == "signature mismatch"


@pytest.mark.parametrize("vector", WIRE_VECTORS, ids=lambda v: v["name"])
def test_verify_request_ignores_unsigned_wire_headers(vector: Vector) -> None:
    headers = {**vector["wire_headers"], "Accept": "application/json", "Connection": "close", "Content-Length": "999"}
    assert _verify_wire(vector, headers, (vector.get("body") or "").encode()) is None


def test_verify_request_reports_skew_in_minutes() -> None:
    vector = WIRE_VECTORS[0]
    parts = urlsplit(vector["wire_path"])
    body = (vector.get("body") or "").encode()
    late = verify_request(
        vector["method"], parts.path, parts.query, vector["wire_headers"], body, secret_for=_secret_for, now=T0 + 4800
    )
    assert late == "signature expired: X-Sdk-Date 20 minutes off"
    early = verify_request(
        vector["method"], parts.path, parts.query, vector["wire_headers"], body, secret_for=_secret_for, now=T0 + 2400
    )
    assert early == "signature expired: X-Sdk-Date 20 minutes off"
    inside = verify_request(
        vector["method"], parts.path, parts.query, vector["wire_headers"], body, secret_for=_secret_for, now=T0 + 4200
    )
    assert inside is None


def test_verify_request_rejects_unknown_key_and_malformed_header() -> None:
    vector = WIRE_VECTORS[1]
    wrong_key = {**vector["wire_headers"], "Authorization": vector["authorization"].replace(AK, "HPUAOTHERAK")}
    assert _verify_wire(vector, wrong_key, b"") == "unknown access key"
    for bad in ("Bearer abc", "SDK-HMAC-SHA256 Access=x", ""):
        assert _verify_wire(vector, {**vector["wire_headers"], "Authorization": bad}, b"") == (
            "malformed Authorization header"
        )
    no_date = {k: v for k, v in vector["wire_headers"].items() if k != "X-Sdk-Date"}
    assert _verify_wire(vector, no_date, b"") == "missing or malformed X-Sdk-Date header"


def test_canonical_uri_appends_one_slash() -> None:
    assert canonical_uri("/v3/p/instances") == "/v3/p/instances/"
    assert canonical_uri("/v3/p/instances/") == "/v3/p/instances/"
    assert canonical_uri("/a%2Fb/c d") == "/a/b/c%20d/"


def test_sdk_date_formats_utc() -> None:
    assert sdk_date(1756972862.9) == "20250904T080102Z"


def test_sign_request_defaults_date_from_clock_and_rejects_bad_date() -> None:
    added = sign_request("GET", "h", "/v3/p/jobs", [], {}, None, ak=AK, sk=SK, now=lambda: 1756972862.0)
    assert added["X-Sdk-Date"] == "20250904T080102Z"
    explicit = sign_request("GET", "h", "/", [], {}, None, ak=AK, sk=SK, sdk_date="20250101T000000Z")
    assert explicit["X-Sdk-Date"] == "20250101T000000Z"
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        sign_request("GET", "h", "/", [], {"X-Sdk-Date": "2025-09-04"}, None, ak=AK, sk=SK)
    with pytest.raises(ValueError, match="Authorization"):
        sign_request("GET", "h", "/", [], {"Authorization": "x"}, None, ak=AK, sk=SK)


def test_unsigned_payload_leaves_body_unchecked() -> None:
    headers = {"Content-Type": "application/octet-stream", "X-Sdk-Date": "20250904T080000Z"}
    added = sign_request("POST", "h", "/up", [], headers, b"abc", ak=AK, sk=SK)
    assert added["X-Sdk-Content-Sha256"] == UNSIGNED_PAYLOAD
    sent = {**headers, **added}
    assert verify_request("POST", "/up", "", sent, b"xyz", secret_for=_secret_for, now=T0) is None


# Segments and values as arbitrary text that UTF-8 can carry (no lone surrogates).
_text = st.text(st.characters(codec="utf-8"), max_size=12)
_segments = st.lists(_text, min_size=1, max_size=4)
_query = st.lists(
    st.tuples(_text, st.one_of(_text, st.booleans(), st.integers(-(10**6), 10**6))),
    max_size=5,
    unique_by=lambda pair: pair[0],  # repeated keys with int values sort numerically client-side only
)
_body_bytes = st.binary(max_size=64)
_ascii_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


@given(segments=_segments, query=_query, body=_body_bytes, agent=_ascii_value, ts=st.integers(0, 4 * 10**9))
def test_sign_then_verify_round_trips_and_every_mutation_fails(
    segments: list[str], query: list[tuple[str, object]], body: bytes, agent: str, ts: int
) -> None:
    path = "/v3/" + "/".join(quote(segment, safe="") for segment in segments)
    headers = {"Content-Type": "application/json;charset=utf-8", "User-Agent": agent, "X-Project-Id": "p"}
    sent = {
        **headers,
        **sign_request("PUT", "127.0.0.1:8443", path, query, headers, body, ak=AK, sk=SK, now=lambda: ts),
    }
    raw_query = canonical_query(query)

    def check(method: str, p: str, q: str, h: Mapping[str, str], b: bytes) -> str | None:
        return verify_request(method, p, q, h, b, secret_for=_secret_for, now=float(ts))

    assert check("PUT", path, raw_query, sent, body) is None
    assert check("POST", path, raw_query, sent, body) == "signature mismatch"
    assert check("PUT", path + "x", raw_query, sent, body) == "signature mismatch"
    assert check("PUT", path, raw_query + "&zz=1", sent, body) == "signature mismatch"
    assert check("PUT", path, raw_query, sent, body + b"\x00") == "signature mismatch"
    if body:
        assert check("PUT", path, raw_query, sent, bytes([body[0] ^ 0x80]) + body[1:]) == "signature mismatch"
    for name in ("User-Agent", "X-Project-Id", "Host"):
        assert check("PUT", path, raw_query, {**sent, name: sent[name] + "x"}, body) == "signature mismatch"
    tampered = sent["Authorization"][:-1] + ("0" if sent["Authorization"][-1] != "0" else "1")
    assert check("PUT", path, raw_query, {**sent, "Authorization": tampered}, body) == "signature mismatch"
