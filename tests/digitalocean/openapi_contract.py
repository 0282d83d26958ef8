"""Check responses against the DigitalOcean OpenAPI subset in tests/fixtures/digitalocean/.

`assert_matches_operation` finds the operation (by operationId, path template or concrete path), picks
the response declared for the status (else `default`), and validates the body against its schema with
all `$ref`s resolved. OpenAPI 3.0's `nullable` is turned into JSON Schema's `["type", "null"]`. With
`strict` (the default) object schemas that list properties also reject unknown keys, so a misspelt field
in a fake fails here rather than in a client.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path

# Stubs (types-jsonschema, types-PyYAML) may be absent from the venv; the ignore stays harmless once they exist.
import jsonschema  # type: ignore[import-untyped, unused-ignore]
import yaml  # type: ignore[import-untyped, unused-ignore]

SPEC_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "digitalocean" / "openapi-subset.yaml"
_METHODS = ("get", "put", "post", "delete", "patch")
_INTEGER = re.compile(r"-?\d+")


@functools.cache
def load_spec() -> dict[str, object]:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert isinstance(spec, dict)
    return spec


def _as_dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict), value
    return value


def _resolve(node: object) -> object:
    """Inline every local $ref (the bundled subset has no cycles)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target: object = load_spec()
            for part in ref.removeprefix("#/").split("/"):
                target = _as_dict(target)[part]
            return _resolve(target)
        return {key: _resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    return node


def _to_json_schema(node: object, strict: bool) -> object:
    if isinstance(node, list):
        return [_to_json_schema(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    parts = node.get("allOf")
    if strict and isinstance(parts, list) and all(isinstance(p, dict) and "properties" in p for p in parts):
        # One object split over allOf (options.yml): strict per member would refuse the other members' keys.
        merged: dict[str, object] = {"type": "object", "properties": {}}
        for part in parts:
            merged["properties"].update(part["properties"])  # type: ignore[attr-defined]
        node = {**{k: v for k, v in node.items() if k != "allOf"}, **merged}
    out = {key: _to_json_schema(value, strict) for key, value in node.items() if key != "example"}
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if strict and isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def operations() -> dict[str, tuple[str, str, dict[str, object]]]:
    """operationId -> (METHOD, path template, operation)."""
    found: dict[str, tuple[str, str, dict[str, object]]] = {}
    for template, item in _as_dict(load_spec()["paths"]).items():
        for method, operation in _as_dict(item).items():
            if method in _METHODS:
                op = _as_dict(operation)
                found[str(op["operationId"])] = (method.upper(), template, op)
    return found


def find_operation(method: str, path_or_id: str) -> tuple[str, dict[str, object]]:
    """(operationId, operation) for an operationId, a path template or a concrete path."""
    ops = operations()
    if path_or_id in ops:
        return path_or_id, ops[path_or_id][2]
    path = path_or_id.split("?")[0]
    for op_id, (op_method, template, op) in ops.items():
        if op_method == method.upper() and path == template:  # /v2/databases/options before /{uuid}
            return op_id, op
    for op_id, (op_method, template, op) in ops.items():
        if op_method != method.upper():
            continue
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"({[^}]+})", template)
        )
        if path == template or re.fullmatch(pattern, path):
            return op_id, op
    raise AssertionError(f"no operation {method} {path_or_id} in the subset")


def response_for(op: dict[str, object], status: int) -> dict[str, object]:
    responses = _as_dict(op["responses"])
    declared = responses.get(str(status), responses.get("default"))
    assert declared is not None, f"status {status} not declared"
    return _as_dict(_resolve(declared))


def assert_matches_operation(
    method: str,
    path_template_or_operation_id: str,
    status: int,
    body: object,
    *,
    headers: Mapping[str, str] | None = None,
    strict: bool = True,
) -> None:
    """Fail unless `body` (parsed JSON, or None for an empty body) fits the documented response."""
    op_id, op = find_operation(method, path_template_or_operation_id)
    response = response_for(op, status)
    content = response.get("content")
    if content is None:
        assert body is None, f"{op_id} {status} documents no body, got {body!r}"
    else:
        assert body is not None, f"{op_id} {status} documents a body, got none"
        schema = _to_json_schema(_as_dict(_as_dict(_as_dict(content)["application/json"])["schema"]), strict)
        jsonschema.validate(body, _as_dict(schema), cls=jsonschema.Draft7Validator)
    if headers is None:
        return
    declared = {name.lower(): _as_dict(spec) for name, spec in _as_dict(response.get("headers", {})).items()}
    for name, spec in declared.items():
        value = headers.get(name)
        if value is not None and _as_dict(spec.get("schema", {})).get("type") == "integer":
            assert _INTEGER.fullmatch(value), f"header {name}: {value!r} is not an integer"
    if "retry-after" in headers:
        assert "retry-after" in declared, f"{op_id} {status} must not carry retry-after"
