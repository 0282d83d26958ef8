"""Schema compaction for tools/list, where each byte is paid for on every turn of every session (issue 9)."""

from __future__ import annotations

from mcp_types import ToolAnnotations

__all__ = ["compact_annotations", "compact_schema", "outline"]


def compact_annotations(hints: ToolAnnotations | None) -> ToolAnnotations | None:
    """The hints a client acts on, without the ones that repeat the spec's (pessimistic) defaults: `readOnlyHint`
    when true (false is the default), `destructiveHint` on every tool that is not read-only (true spelled out on
    the tools that destroy, so every write states one), `idempotentHint` only when true there, `openWorldHint` only
    when false. A read states no destructive or idempotent hint: the spec calls them meaningful only when
    readOnlyHint is false (issue 23)."""
    if hints is None:
        return None
    read_only = hints.read_only_hint is True
    return ToolAnnotations(
        title=hints.title,
        read_only_hint=True if read_only else None,
        destructive_hint=None if read_only else hints.destructive_hint,
        idempotent_hint=True if hints.idempotent_hint and not read_only else None,
        open_world_hint=False if hints.open_world_hint is False else None,
    )


def compact_schema(node: object, parent_key: str | None = None, *, keep_null: bool = False) -> object:
    """Input schemas without pydantic's noise: no `title` (a property *named* title is kept), an optional
    `X | None = None` as `type: X` (leaving it out is how a client says none; null is still accepted), a required
    `X | None` as `type: [X, "null"]` instead of an `anyOf`, no `default: null`. Descriptions and limits stay:
    models read them. `keep_null` spells `null` out on optional fields too (a document's schema: an editor must
    accept a null that the models accept)."""
    if isinstance(node, list):
        return [compact_schema(v, parent_key, keep_null=keep_null) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str) and parent_key != "properties":
            continue
        if key == "default" and value is None and parent_key != "properties":
            continue
        out[key] = compact_schema(value, key, keep_null=keep_null)
    variants = out.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and {"type": "null"} in variants:
        other = next(v for v in variants if v != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            optional = not keep_null and "default" in node and node["default"] is None
            out = {**other, **out, "type": other["type"] if optional else [other["type"], "null"]}
    return out


def _shallow(prop: object) -> dict[str, object] | None:
    """One output property reduced to its JSON type (nullable kept), so the schema still validates the result; a
    plain string is named without its type (`{}`: most fields are strings, and the JSON text shows them); None
    for a field that may hold any value."""
    if not isinstance(prop, dict):
        return None
    if isinstance(prop.get("anyOf"), list):
        return None  # optional or union-typed: any JSON value (the field name and the JSON text say enough)
    if "$ref" in prop or "properties" in prop:
        return {"type": "object"}
    kind = prop.get("type")
    if kind == "string":
        return {}
    return {"type": kind} if isinstance(kind, str | list) else None


# In every result, and the server's instructions say so: listing it again in each outline says nothing new.
_EVERY_RESULT = frozenset({"backend"})


def outline(schema: dict[str, object]) -> dict[str, object]:
    """The result's top-level fields that have one JSON type, and that type (a string field by its name alone).
    Every result is also returned as JSON text, so nested shapes need no schema in tools/list, where each byte is
    paid for on every turn of every session; a field that may hold any value constrains nothing and is left out,
    as is `backend` (issue 23)."""
    props = schema.get("properties")
    result: dict[str, object] = {"type": "object"}
    if isinstance(props, dict):
        shallow = {name: _shallow(prop) for name, prop in props.items() if name not in _EVERY_RESULT}
        result["properties"] = {name: prop for name, prop in shallow.items() if prop is not None}
    return result
