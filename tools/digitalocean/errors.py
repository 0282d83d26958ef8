"""DigitalOcean's error bodies, the next step each error code suggests, and reading success bodies safely."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import httpx2
from pydantic import BaseModel

from poolpilot.server.kernel.bodies import body_error, parse_body
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.http import ProviderErrorParts, unreachable_hint

__all__ = ["hinter", "json_or_none", "listed", "member", "next_page", "parse_error", "read_body"]

M = TypeVar("M", bound=BaseModel)


def parse_error(response: httpx2.Response) -> ProviderErrorParts:
    """`{id, message, request_id}`; 5xx pages from the edge (TF#794) fall back to the status text."""
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        message = body.get("message")
        request_id = body.get("request_id")
        return ProviderErrorParts(
            provider_code=body["id"],
            message=message[:300] if isinstance(message, str) and message else None,
            request_id=request_id if isinstance(request_id, str) else None,
        )
    reason = response.reason_phrase or "error"
    return ProviderErrorParts(message=f"DigitalOcean answered HTTP {response.status_code} {reason} (no JSON body)")


def hinter(token_var: str, backend: str, base_url: str) -> Callable[[ErrorInfo], str | None]:
    other = "DIGITALOCEAN_ACCESS_TOKEN" if token_var == "DIGITALOCEAN_TOKEN" else "DIGITALOCEAN_TOKEN"
    unreachable = unreachable_hint(backend, base_url, "POOLPILOT_DIGITALOCEAN_URL")

    def hint(info: ErrorInfo) -> str | None:
        if info.code == "auth_failed":
            return (
                f"Ask the operator to set {token_var} (or {other}) to a valid DigitalOcean API token with "
                "database scopes, then run `poolpilot doctor`."
            )
        if info.code == "forbidden":
            return (
                "The token lacks a scope for this call (database:read, :create, :update or :delete); "
                "ask the operator for a token that has it."
            )
        if info.code == "rate_limited":
            if info.retry_after_s is not None:
                return f"Wait {info.retry_after_s:.0f} s, then retry (limits: 250 requests/minute, 5,000/hour)."
            return "The hourly limit (5,000 requests) is used up; retry after the ratelimit-reset time."
        if info.code == "not_found":
            return "List what exists with the digitalocean_list_* tools and use an exact name or id."
        if info.code == "validation_error":
            return "DigitalOcean refused these values; correct them and call the tool again."
        if info.code == "upstream_error":
            return "DigitalOcean failed; read the resource back with a get/list tool before retrying a change."
        if info.code in ("timeout", "connection_error"):
            return unreachable
        return None

    return hint


_BODY_HINT = "Retry later; if it persists, DigitalOcean's API changed shape: report it with `poolpilot doctor` output."


def read_body(model: type[M], data: object, what: str) -> M:
    return parse_body(model, data, provider="digitalocean", label="DigitalOcean", what=what, hint=_BODY_HINT)


def member(response: httpx2.Response, key: str, what: str) -> object:
    """`body[key]` of a JSON object body; anything else is an `upstream_error`, never a raw exception."""
    body = json_or_none(response)
    if not isinstance(body, dict) or key not in body:
        raise body_error("digitalocean", "DigitalOcean", what, f"no {key!r} object", _BODY_HINT)
    return body[key]


def json_or_none(response: httpx2.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def listed(response: httpx2.Response, key: str, what: str) -> tuple[list[object], object]:
    """`body[key]` (absent: empty) and the body. Not a list: a provider fault, never an empty list to trust."""
    body = json_or_none(response)
    found = body.get(key) if isinstance(body, dict) else None
    if found is not None and not isinstance(found, list):
        raise PoolpilotError(
            ErrorInfo(
                code="upstream_error",
                message=f"DigitalOcean answered {what} with an unexpected body (no {key!r} list)",
                provider="digitalocean",
                http_status=response.status_code,
                hint="Retry later; if it persists, check POOLPILOT_DIGITALOCEAN_URL points at the API.",
            )
        )
    return found or [], body


def next_page(body: object) -> object:
    links = body.get("links") if isinstance(body, dict) else None
    pages = links.get("pages") if isinstance(links, dict) else None
    return pages.get("next") if isinstance(pages, dict) else None
