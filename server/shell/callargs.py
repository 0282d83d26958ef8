"""`poolpilot call` arguments typed by the tool's input schema, did-you-mean, and the per-tool help text.

`key=value` is converted by the schema, not guessed: a string argument keeps its text (`database_name=2024`,
`database_name=null` are strings), integers and booleans are parsed strictly (`7`, `true`/`false`), `null`
only where the schema allows null and no string. `key:=JSON` passes explicit JSON, `key=@file` a JSON file.
Errors name the key and what it takes, never the rejected value (it may be a secret typed in the wrong place).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from poolpilot.server.shell.terminal import program

__all__ = ["UsageError", "convert", "did_you_mean", "parse_pairs", "tool_help"]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Schema = Mapping[str, object]


class UsageError(ValueError):
    """A command line that cannot be called: printed as one line, exit 2."""


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """`; did you mean 'x'?` for the closest choice, or nothing."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _types(prop: Schema) -> list[str]:
    kind = prop.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def convert(key: str, raw: str, prop: Schema) -> object:
    """The value of `key=raw` for a property of this schema (raises UsageError)."""
    types = _types(prop)
    if "string" in types:
        return raw
    if raw == "null" and "null" in types:
        return None
    if "integer" in types:
        if _INTEGER.fullmatch(raw):
            return int(raw)
        raise UsageError(f"{key} takes an integer (digits only), or {key}:=JSON")
    if "number" in types:
        if _INTEGER.fullmatch(raw):
            return int(raw)
        if _NUMBER.fullmatch(raw):
            return float(raw)
        raise UsageError(f"{key} takes a number such as 2.5, or {key}:=JSON")
    if "boolean" in types:
        if raw in ("true", "false"):
            return raw == "true"
        raise UsageError(f"{key} takes true or false")
    return _json(key, raw)  # objects, arrays, or a schema that says nothing: JSON is the only reading


def _json(key: str, raw: str) -> object:
    try:
        value: object = json.loads(raw)
    except ValueError:
        raise UsageError(f"{key}: the value is not valid JSON") from None
    return value


def _from_file(key: str, path: str) -> object:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{key}=@{path}: cannot read the file ({exc.strerror})") from None
    try:
        value: object = json.loads(text)
    except ValueError:
        raise UsageError(f"{key}=@{path}: the file is not valid JSON") from None
    return value


def parse_pairs(tool: str, pairs: Sequence[str], schema: Schema) -> dict[str, object]:
    """`key=value`, `key:=JSON`, `key=@file` for `tool`, checked against its input schema."""
    props = schema.get("properties")
    properties: Mapping[str, Schema] = props if isinstance(props, dict) else {}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        explicit = key.endswith(":")
        key = key.removesuffix(":")
        if not sep or not _KEY.fullmatch(key):
            # Not echoed: a value typed without its key (a password, say) would land on the screen and in logs.
            raise UsageError(f"argument {len(out) + 1} is not key=value (keys are letters, digits and _)")
        if key not in properties:
            raise UsageError(
                f"{tool} has no argument {key!r}{did_you_mean(key, list(properties))} "
                f"(`{program()} call {tool} --help` lists them)"
            )
        if key in out:
            raise UsageError(f"{key} is given twice")
        if explicit:
            out[key] = _json(key, raw)
        elif raw.startswith("@") and len(raw) > 1:
            out[key] = _from_file(key, raw[1:])
        else:
            out[key] = convert(key, raw, properties[key])
    return out


def _type_text(prop: Schema) -> str:
    enum = prop.get("enum")
    if isinstance(enum, list):
        text = "|".join(str(v) for v in enum)
    else:
        text = "|".join(t for t in _types(prop) if t != "null") or "JSON"
    fmt = prop.get("format")
    return f"{text} ({fmt})" if isinstance(fmt, str) else text


def _limits(prop: Schema) -> list[str]:
    parts = []
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None and high is not None:
        parts.append(f"{low}-{high}")
    elif low is not None:
        parts.append(f">= {low}")
    elif high is not None:
        parts.append(f"<= {high}")
    min_len, max_len = prop.get("minLength"), prop.get("maxLength")
    if max_len is not None:
        parts.append(f"{min_len or 0}-{max_len} chars")
    return parts


def tool_help(name: str, description: str, safety: str, schema: Schema, program: str) -> str:
    """What `poolpilot call TOOL --help` and `poolpilot tools TOOL` print."""
    props = schema.get("properties")
    properties: Mapping[str, Schema] = props if isinstance(props, dict) else {}
    required = schema.get("required")
    needed = [k for k in properties if isinstance(required, list) and k in required]
    optional = [k for k in properties if k not in needed]
    usage = " ".join([*(f"{k}=…" for k in needed), *(f"[{k}=…]" for k in optional)])
    why = {
        "read": "reads only",
        "write": "creates something; no confirmation",
        "destructive": "asks for confirmation: a prompt in a terminal, else a preview and a confirm_token",
    }
    lines = [f"{name}: {description.strip()}", f"safety: {safety} ({why.get(safety, safety)})", ""]
    lines.append(f"usage: {program} call {name} {usage}".rstrip())
    if properties:
        lines.append("")
        lines.append("arguments:")
    width = max((len(k) for k in properties), default=0)
    for key in [*needed, *optional]:
        prop = properties[key]
        facts = [_type_text(prop), "required" if key in needed else "optional"]
        if "default" in prop:
            facts.append(f"default {json.dumps(prop['default'])}")
        facts += _limits(prop)
        text = prop.get("description")
        detail = f". {text}" if isinstance(text, str) else ""
        lines.append(f"  {key.ljust(width)}  {', '.join(facts)}{detail}")
    lines += ["", "values: key=value is typed by the schema; key:=JSON passes JSON; key=@file.json reads a JSON file."]
    return "\n".join(lines)
