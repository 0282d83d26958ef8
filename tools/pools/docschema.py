"""The desired-state document's JSON Schema: the kernel's document models plus each provider's entry fields.

Generated from the models (`document_schema`, over every registered provider's spec) and shipped as
`desired-state.schema.json` beside this module (a test checks the file against the models). The tools' `document`
argument carries the shipped schema, its references inlined (`tool_input_schema`), so a client sees each
provider's fields; the server validates them again against the provider's model at plan time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import cast

from pydantic import BaseModel

from poolpilot.server.kernel.desired import DesiredState
from poolpilot.server.kernel.schema import compact_schema

__all__ = ["SCHEMA_PATH", "document_schema", "shipped", "tool_input_schema"]

SCHEMA_PATH = Path(__file__).with_name("desired-state.schema.json")


def _compact(schema: dict[str, object]) -> dict[str, object]:
    return cast(dict[str, object], compact_schema(schema, keep_null=True))


def document_schema(specs: Mapping[str, type[BaseModel]]) -> dict[str, object]:
    """The document's schema with one `oneOf` branch per provider: `provider` picks the `spec` model."""
    schema = _compact(DesiredState.model_json_schema())
    defs = cast(dict[str, dict[str, object]], schema["$defs"])
    for name, model in specs.items():
        defs[f"spec_{name}"] = _compact(model.model_json_schema())
    defs["PoolEntry"]["oneOf"] = [
        {"properties": {"provider": {"const": name}, "spec": {"$ref": f"#/$defs/spec_{name}"}}} for name in specs
    ]
    entry = cast(dict[str, dict[str, object]], defs["PoolEntry"]["properties"])
    entry["spec"] = {"type": "object", "description": "The provider's fields (below); omitted ones are kept"}
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "poolpilot desired state"}
    return {**head, **schema}


@cache
def shipped() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _inline(node: object, defs: Mapping[str, object]) -> object:
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inline(defs[ref.removeprefix("#/$defs/")], defs)
    return {k: _inline(v, defs) for k, v in node.items() if k not in ("$defs", "$schema", "$id", "title")}


@cache
def tool_input_schema() -> dict[str, object]:
    """The shipped schema with every reference inlined (a tool argument's schema cannot point at the file's
    `$defs`)."""
    schema = shipped()
    return cast(dict[str, object], _inline(schema, cast(Mapping[str, object], schema["$defs"])))
