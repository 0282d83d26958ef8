"""Shape variants of the fake providers' success bodies: what a live API may send that the seeds do not.

A `Shape` takes the endpoint name (the fake's operationId or route name) and the body the fake would
send, and returns the body to send instead; it builds a new body and never changes the one it is given (that one
may share lists with the fake's state). The fakes apply it to success bodies only, and only when one is set
(a fake's `shape=` argument or its `shape` attribute), so the default
shapes stay byte-identical for the providers' own clients. Tests use the presets below or their own.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EXTRA_FIELD", "Shape", "compose", "extended", "nulled"]

Shape = Callable[[str, dict[str, object]], dict[str, object]]
EXTRA_FIELD = "x_poolpilot_future"


def _map_objects(value: object, change: Callable[[dict[str, object]], dict[str, object]]) -> object:
    """`change` applied to every JSON object, innermost first."""
    if isinstance(value, dict):
        return change({key: _map_objects(item, change) for key, item in value.items()})
    if isinstance(value, list):
        return [_map_objects(item, change) for item in value]
    return value


def nulled(keep: frozenset[str]) -> Shape:
    """Every field not named in `keep` is JSON null, at any depth (objects and lists included)."""

    def shape(endpoint: str, body: dict[str, object]) -> dict[str, object]:
        def change(obj: dict[str, object]) -> dict[str, object]:
            return {key: value if key in keep else None for key, value in obj.items()}

        # The envelope keys ("pool", "proxy_list", ...) are kept, or there would be nothing left to read.
        return {key: _map_objects(value, change) for key, value in body.items()}

    return shape


def extended(endpoint: str, body: dict[str, object]) -> dict[str, object]:
    """Every object gains a field no client knows, holding an object, a list and a null."""

    def change(obj: dict[str, object]) -> dict[str, object]:
        return {**obj, EXTRA_FIELD: {"since": "2027-01", "items": [1, "two", None], "flag": None}}

    result = _map_objects(body, change)
    assert isinstance(result, dict)
    return result


def compose(*shapes: Shape) -> Shape:
    """Apply `shapes` left to right."""

    def shape(endpoint: str, body: dict[str, object]) -> dict[str, object]:
        for each in shapes:
            body = each(endpoint, body)
        return body

    return shape
