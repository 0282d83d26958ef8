"""The shared upstream layer: timeouts, safe retries, rate-limit pacing and error mapping.

Every provider client sends through one `Upstream`. It retries only what is safe (reads, and writes the
caller marks idempotent), honours `Retry-After`, paces itself when the provider's remaining budget runs low,
bounds every call in attempts and total time, and turns every failure into a `PoolpilotError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2

from poolpilot.server.kernel.errors import ErrorCode, ErrorInfo, PoolpilotError

__all__ = [
    "UPSTREAM_LIMITS",
    "ProviderErrorParts",
    "RetryPolicy",
    "Upstream",
    "code_for_status",
    "live_transport",
    "unreachable_hint",
]

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Request URLs built and checked once, then reused: httpx2's build_request parses and merges the URL on every
# call (about three quarters of its cost, issue 23). Paths carry ids and names, so the cache is bounded.
_URL_CACHE_SIZE = 512

# Keep as many connections alive as may be open: httpx2 keeps 20 of its 100, so a burst of concurrent reads (an agent
# fanning out, pools_overview) would close and reopen 80 connections every time (issue 23).
UPSTREAM_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=100)


def _direct_transport(client: httpx2.AsyncClient) -> httpx2.AsyncBaseTransport | None:
    """poolpilot's own transport of `client` (server/kernel/wire.py, server/kernel/inprocess.py), to be called
    without `AsyncClient.send` (its auth, redirect and hook machinery and its cookie extraction through
    http.cookiejar cost about 0.2 ms of CPU per request, and none of it applies); None when a proxy is mounted,
    auth or hooks are set, or the transport is another one: those requests go through `send`."""
    from poolpilot.server.kernel.inprocess import InProcessTransport
    from poolpilot.server.kernel.wire import LeanTransport

    transport = getattr(client, "_transport", None)  # httpx2 keeps it there; renamed: every request takes `send`
    hooks = client.event_hooks
    if getattr(client, "_mounts", True) or client.auth is not None or hooks["request"] or hooks["response"]:
        return None
    return transport if isinstance(transport, LeanTransport | InProcessTransport) else None


def live_transport() -> httpx2.AsyncBaseTransport:
    """The transport of a live upstream: HTTP/1.1 on asyncio (server/kernel/wire.py), about 0.5 ms of CPU less
    per request than httpx2's own; httpx2 still mounts its proxy transport for proxied URLs."""
    from poolpilot.server.kernel.wire import LeanTransport

    return LeanTransport(max_connections=UPSTREAM_LIMITS.max_connections or 100)


Param = tuple[str, str | int | float | bool | None]
Params = list[Param]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 5.0
    total_s: float = 45.0
    # Below this share of the rate-limit window, spread the remaining requests over the time left.
    pace_below: float = 0.05
    max_pace_s: float = 2.0


@dataclass(frozen=True)
class ProviderErrorParts:
    provider_code: str | None = None
    message: str | None = None
    request_id: str | None = None


ParseError = Callable[[httpx2.Response], ProviderErrorParts]
Hint = Callable[[ErrorInfo], str | None]
Prepare = Callable[[httpx2.Request], None]


def _check_verbatim(path: str, request: httpx2.Request) -> None:
    """Refuse to send a request whose path the URL library rewrote: httpx2 removes `.` and `..` segments (RFC 3986
    section 5.2.4), so `/dbs/.` would go out as `/dbs`, the collection. Names refuse dot segments long before
    this; this is the backstop that keeps every path on the wire exactly what the client built."""
    wanted = urlsplit(path).path.encode()
    if not request.url.raw_path.partition(b"?")[0].endswith(wanted):
        raise PoolpilotError(
            ErrorInfo(
                code="validation_error",
                message="the request path would be rewritten on the way out (a dot segment); nothing was sent",
                hint="A name cannot be '.' or '..'; correct it and call the tool again.",
            )
        )


def code_for_status(status: int) -> ErrorCode:
    mapping: dict[int, ErrorCode] = {
        400: "validation_error",
        401: "auth_failed",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        422: "validation_error",
        429: "rate_limited",
    }
    return mapping.get(status, "upstream_error")


def unreachable_hint(backend: str, base_url: str, settings: str) -> str:
    """The hint for a timeout or connection error: the live base URL and the settings that choose it, or, in sandbox
    mode (no network), the embedded sandbox."""
    if backend == "sandbox":
        return "No answer from the embedded sandbox (a --fault rule?); read the state back before retrying a change."
    return f"Check that {base_url} is reachable ({settings}), then read the state back."


def _retry_after(response: httpx2.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class Upstream:
    """One provider's HTTP client with our retry, pacing and error rules."""

    def __init__(
        self,
        *,
        provider: str,
        backend: str,
        client: httpx2.AsyncClient,
        parse_error: ParseError,
        hint: Hint,
        prepare: Prepare | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.backend = backend
        self.client = client
        self._parse_error = parse_error
        self._hint = hint
        self._prepare = prepare
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self._pace_s = 0.0
        self.requests_sent = 0
        self._urls: dict[tuple[str, tuple[Param, ...]], httpx2.URL] = {}
        self._direct = _direct_transport(client)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: object | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx2.Response:
        """Send once or, when safe, retry; return the response whose status is in `ok`, or raise."""
        safe = method in ("GET", "HEAD") if idempotent is None else idempotent
        policy = self.policy
        # The bound is kept twice: on the injected clock (what retries and pacing sleep on, so it holds under a
        # test's manual clock too) and on real time (a backstop for a transport that ignores its timeouts).
        deadline = self._clock() + policy.total_s
        try:
            with anyio.fail_after(policy.total_s):
                return await self._send_with_retries(
                    method, path, params, json_body, content, headers, safe, ok, deadline
                )
        except TimeoutError:
            raise self._error("timeout", self._overdue(method), hint=self._unsure(safe)) from None

    async def _send_with_retries(
        self,
        method: str,
        path: str,
        params: Params | None,
        json_body: object | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        safe: bool,
        ok: tuple[int, ...],
        deadline: float,
    ) -> httpx2.Response:
        attempt = 0
        while True:
            attempt += 1
            if attempt == 1 and self._pace_s:
                await self._sleep(self._pace_s)  # before a retry, the backoff already covers the pace
            request = self._build(method, path, params, json_body, content, headers)
            if self._prepare is not None:
                self._prepare(request)
            try:
                self.requests_sent += 1
                if self._direct is not None:
                    response = await self._direct.handle_async_request(request)
                    response.request = request
                    if "set-cookie" in response.headers:
                        self.client.cookies.extract_cookies(response)
                else:
                    response = await self.client.send(request)
                await response.aread()
            except httpx2.TimeoutException:
                if safe and await self._backoff(attempt, None, deadline):
                    continue
                message = (
                    self._overdue(method) if self._clock() >= deadline else f"{method} to {self.provider} timed out"
                )
                raise self._error("timeout", message, hint=self._unsure(safe)) from None
            except httpx2.TransportError as exc:
                # A connect failure means nothing was sent, so even a non-idempotent call may be resent.
                if (safe or isinstance(exc, httpx2.ConnectError)) and await self._backoff(attempt, None, deadline):
                    continue
                raise self._error(
                    "connection_error",
                    f"{method} to {self.provider} failed: {type(exc).__name__}",
                    hint=self._unsure(safe),
                ) from None
            self._update_pace(response)
            if response.status_code in ok:
                return response
            retry_after = _retry_after(response)
            # 429 means the request was refused before it was processed: resending is safe for any method.
            retryable = response.status_code in RETRYABLE_STATUS and (safe or response.status_code == 429)
            if retryable and await self._backoff(attempt, retry_after, deadline):
                continue
            raise PoolpilotError(self.describe(response))

    def _build(
        self,
        method: str,
        path: str,
        params: Params | None,
        json_body: object | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> httpx2.Request:
        """The request httpx2's `build_request` would build. A body-less request to a URL built before reuses that
        URL (already checked verbatim); the rest, and a client holding cookies, take the library's own path."""
        client = self.client
        key = (path, tuple(params) if params else ())
        url = self._urls.get(key)
        if url is None or json_body is not None or content is not None or client.cookies:
            request = client.build_request(
                method, path, params=params, json=json_body, content=content, headers=headers
            )
            _check_verbatim(path, request)
            if url is None:
                if len(self._urls) >= _URL_CACHE_SIZE:
                    self._urls.clear()
                self._urls[key] = request.url
            return request
        merged = client.headers
        if headers:
            merged = httpx2.Headers(merged)
            merged.update(headers)
        return httpx2.Request(method, url, headers=merged, extensions={"timeout": client.timeout.as_dict()})

    async def _backoff(self, attempt: int, retry_after: float | None, deadline: float) -> bool:
        """Sleep before attempt `attempt + 1`; False (no sleep) when attempts or the time budget are used up."""
        policy = self.policy
        if attempt >= policy.attempts:
            return False
        delay = min(policy.cap_s, policy.base_s * 2 ** (attempt - 1)) * (0.5 + self._jitter() / 2)
        # One wait: Retry-After when the answer gave one (a 429 also says remaining 0, and the pace computed from
        # that must not stretch or add to it), else the longer of backoff and the low-budget pace.
        delay = max(delay, retry_after) if retry_after is not None else max(delay, self._pace_s)
        if self._clock() + delay >= deadline:
            return False  # the wait alone would overrun the call's bound: report now, with Retry-After if any
        await self._sleep(delay)
        return True

    def _overdue(self, method: str) -> str:
        return f"{method} to {self.provider} did not finish within {self.policy.total_s:.0f}s"

    @staticmethod
    def _unsure(safe: bool) -> str | None:
        return None if safe else "The change may or may not have happened: read the resource back."

    def _update_pace(self, response: httpx2.Response) -> None:
        headers = response.headers
        try:
            limit = int(headers["ratelimit-limit"])
            remaining = int(headers["ratelimit-remaining"])
            reset = float(headers["ratelimit-reset"])
        except (KeyError, ValueError):
            return
        if limit <= 0 or remaining >= limit * self.policy.pace_below:
            self._pace_s = 0.0
            return
        window = max(0.0, reset - self._clock())
        self._pace_s = min(self.policy.max_pace_s, window / max(remaining, 1))

    def describe(self, response: httpx2.Response) -> ErrorInfo:
        """The error model for a non-success response; the provider body is parsed, never passed through."""
        parts = self._parse_error(response)
        status = response.status_code
        info = ErrorInfo(
            code=code_for_status(status),
            message=parts.message or f"{self.provider} answered HTTP {status}",
            provider=self.provider,
            provider_code=parts.provider_code,
            http_status=status,
            request_id=parts.request_id or response.headers.get("x-request-id"),
            retry_after_s=_retry_after(response),
        )
        return info.model_copy(update={"hint": self._hint(info)})

    def _error(self, code: ErrorCode, message: str, *, hint: str | None = None) -> PoolpilotError:
        info = ErrorInfo(code=code, message=message, provider=self.provider)
        return PoolpilotError(info.model_copy(update={"hint": hint or self._hint(info)}))
