"""What doctor probes share: one bounded GET that checks the endpoint (DNS, connect, TLS, answer) and hands the
answer to the provider's credential check. Probes send reads only, each bounded by `timeout_s`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import anyio
import httpx2

from poolpilot.server.kernel.provider import Check, Status

__all__ = ["Answer", "check", "get", "skew"]


def check(name: str, status: Status, detail: str, fix: str | None = None) -> Check:
    return Check(name=name, status=status, detail=detail, fix=fix)


class Answer(NamedTuple):
    status: int
    date: str | None


def skew(answer: Answer) -> float | None:
    """How far the server's `Date` is ahead of this machine's clock, in seconds (None: no usable header)."""
    try:
        return parsedate_to_datetime(answer.date).timestamp() - time.time() if answer.date else None
    except (TypeError, ValueError):
        return None


async def get(
    url: str, headers: Mapping[str, str], timeout_s: float, env_var: str, provider: str
) -> tuple[Check, Answer | None]:
    """Resolve the host, then one GET: the endpoint check, and the answer for the credential check."""
    name = f"{provider} endpoint"
    parts = urlsplit(url)
    host = parts.hostname or ""
    fix = f"check {env_var} and this machine's DNS, proxy and firewall"
    started = time.monotonic()
    try:
        with anyio.fail_after(timeout_s):
            await anyio.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except TimeoutError:
        return check(name, "fail", f"{host} did not resolve within {timeout_s:g} s", fix), None
    except OSError as exc:
        return check(name, "fail", f"{host} does not resolve ({exc.strerror})", fix), None
    try:
        with anyio.fail_after(timeout_s):
            async with httpx2.AsyncClient(timeout=timeout_s) as client:
                response = await client.get(url, headers=dict(headers))
    except (TimeoutError, httpx2.TimeoutException):
        detail = f"{parts.netloc} accepted no request or sent no answer within {timeout_s:g} s"
        return check(name, "fail", detail, fix), None
    except httpx2.HTTPError as exc:
        cause = exc.__context__ or exc
        kind = "TLS handshake failed" if "ssl" in type(cause).__module__.lower() else "connection failed"
        return check(name, "fail", f"{parts.netloc}: {kind} ({type(cause).__name__})", fix), None
    elapsed = int((time.monotonic() - started) * 1000)
    answer = Answer(response.status_code, response.headers.get("date"))
    detail = f"{parts.scheme}://{parts.netloc} answered HTTP {response.status_code} in {elapsed} ms"
    return check(name, "ok", detail), answer
