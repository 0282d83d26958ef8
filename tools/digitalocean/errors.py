"""DigitalOcean's error bodies and the next step each error code suggests."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2

from poolpilot.server.kernel.errors import ErrorInfo
from poolpilot.server.kernel.http import ProviderErrorParts, unreachable_hint

__all__ = ["hinter", "parse_error"]


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
