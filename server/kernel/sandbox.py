"""The embedded sandbox: the providers' fake APIs composed into one ASGI app, with fault injection.

Each provider's fake serves under its own first path segment (its `prefix`), all at the root of one host:port
(some official clients drop any path prefix). Routing splits the *raw* path first and decodes each segment
afterwards, so a pool named `a b/c%d` (sent as `a%20b%2Fc%25d`) stays one segment.

Faults are rules matched per provider or endpoint: an HTTP status (429 carries Retry-After), added latency,
a timeout (the response never comes in time), a dropped connection, or `applied-500` (the change happened,
the answer says it failed). CLI syntax, one rule per `--fault`: `KIND[@TARGET][%RATE][#TIMES]`, e.g.
`500@databases_add_connectionPool%20`, `429@<provider>`, `latency:50ms`, `applied-500#1`, `drop@get_job`.
A target must name a provider or one of its fake's `endpoints`: the sandbox refuses a rule that could never fire.

With a `SandboxStore` the state lives outside the process (the CLI's `$XDG_STATE_HOME/poolpilot/`): each request
is handled under the store's lock on the state last saved, and the state is saved again when it changed, so
separate processes see one sandbox and each request is atomic, as upstream.
"""

from __future__ import annotations

import difflib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar
from urllib.parse import unquote

import anyio
import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from poolpilot.server.kernel.inprocess import InProcessTransport
from poolpilot.server.kernel.text import quote

if TYPE_CHECKING:
    from poolpilot.server.kernel.provider import Provider

__all__ = ["FakeProvider", "Fault", "FaultPlan", "Sandbox", "SandboxOptions", "SandboxStore", "parse_fault"]

T = TypeVar("T")
F = TypeVar("F")

FaultKind = Literal["status", "latency", "timeout", "drop", "applied-500"]


class FakeProvider(Protocol):
    prefix: str

    async def handle(self, request: Request, segments: list[str]) -> Response: ...

    def error(self, status: int, *, retry_after: int | None = None) -> Response: ...

    def endpoint(self, method: str, segments: list[str]) -> str | None: ...

    @property
    def endpoints(self) -> frozenset[str]:
        """Every endpoint name `endpoint()` can return (fault targets)."""

    def export_state(self) -> dict[str, object]:
        """What the API can change, as JSON (secrets stay seeded)."""

    def import_state(self, data: object) -> None:
        """Back to the seeds, then what `export_state` wrote (anything unreadable is skipped)."""


class SandboxStore(Protocol):
    """Where a persistent sandbox keeps its state between processes (blocking calls: run off the event loop)."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def load(self) -> object | None:
        """The saved state if it changed since this store's last load or save, else None."""

    def save(self, state: dict[str, object]) -> None: ...


@dataclass
class Fault:
    kind: FaultKind
    status: int = 500
    delay_s: float = 0.0
    retry_after: int = 1
    target: str | None = None  # provider name, endpoint name, or None for everything
    rate: float = 1.0
    times: int | None = None  # how many more times it fires; None = unlimited

    def matches(self, provider: str, endpoint: str | None) -> bool:
        return self.target is None or self.target in (provider, endpoint)


_FAULT = re.compile(
    r"^(?P<kind>\d{3}|latency:(?P<ms>\d+)ms|timeout|drop|applied-500)"
    r"(?:@(?P<target>[A-Za-z0-9_.-]+))?(?:%(?P<rate>\d{1,3}))?(?:#(?P<times>\d+))?$"
)


def parse_fault(spec: str) -> Fault:
    """Parse one `--fault` rule; raises ValueError naming the syntax."""
    match = _FAULT.match(spec.strip())
    if match is None:
        raise ValueError(
            f"fault {spec!r} not understood; use KIND[@TARGET][%RATE][#TIMES] with KIND one of "
            "429, 500, 503 (any 4xx/5xx), latency:<ms>ms, timeout, drop, applied-500"
        )
    kind_text = match["kind"]
    rate = int(match["rate"]) / 100 if match["rate"] else 1.0
    times = int(match["times"]) if match["times"] else None
    target = match["target"]
    if kind_text.isdigit():
        status = int(kind_text)
        if not 400 <= status <= 599:
            raise ValueError(f"fault status {status} must be 400-599")
        return Fault("status", status=status, target=target, rate=rate, times=times)
    if match["ms"]:
        return Fault("latency", delay_s=int(match["ms"]) / 1000, target=target, rate=rate, times=times)
    return Fault(kind_text, target=target, rate=rate, times=times)  # type: ignore[arg-type]


@dataclass
class FaultPlan:
    rules: list[Fault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    fired: int = 0

    def add(self, fault: Fault | str) -> Fault:
        rule = parse_fault(fault) if isinstance(fault, str) else fault
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, provider: str, endpoint: str | None) -> list[Fault]:
        """The rules that fire for this request (latency ones may combine with one failure)."""
        chosen: list[Fault] = []
        for rule in self.rules:
            if rule.times == 0 or not rule.matches(provider, endpoint):
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            if rule.times is not None:
                rule.times -= 1
            chosen.append(rule)
            self.fired += 1
        return chosen


def _not_found() -> Response:
    return JSONResponse({"id": "not_found", "message": "The resource you requested could not be found."}, 404)


@dataclass
class SandboxOptions:
    """What a face's sandbox factory gets: the shared clock and seeded password, and provider knobs by keyword
    (`do_require_token`, `job_seconds`, …). Every knob must be taken by some provider (`unused()` tells)."""

    clock: Callable[[], float] = time.time
    password: str = "sbx"
    knobs: dict[str, object] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)

    def take(self, name: str, default: T) -> T:
        self._taken.add(name)
        return self.knobs.get(name, default)  # type: ignore[return-value]

    def unused(self) -> list[str]:
        return sorted(set(self.knobs) - self._taken)


class Sandbox:
    """The fake provider APIs in one ASGI app, routed by their first path segment (`v2`, `v3`). State lives in
    memory and starts from the documented seeds. Build it from the registered faces with `Sandbox.of(faces)`."""

    def __init__(
        self,
        fakes: Mapping[str, FakeProvider],
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        faults: FaultPlan | None = None,
        timeout_s: float = 3600.0,
        store: SandboxStore | None = None,
    ) -> None:
        self.faults = faults or FaultPlan()
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._closing = anyio.Event()
        self.fakes = dict(fakes)
        self._providers: dict[str, tuple[str, FakeProvider]] = {f.prefix: (n, f) for n, f in self.fakes.items()}
        self.requests = 0
        self.store = store
        self._saved = ""
        self._check_targets()

    def _check_targets(self) -> None:
        """A rule whose target names no provider or endpoint would never fire: refuse it, with a suggestion."""
        known = sorted({*self.fakes, *(e for f in self.fakes.values() for e in f.endpoints)})
        for rule in self.faults.rules:
            if rule.target is not None and rule.target not in known:
                close = difflib.get_close_matches(rule.target, known, n=1)
                suggestion = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"fault target {quote(rule.target)} is not a provider or endpoint; {suggestion}"
                    f"targets: {', '.join(self.fakes)} or an endpoint name (see README, Fault injection)"
                )

    @classmethod
    def fakes_of(
        cls,
        faces: Sequence[Provider],
        *,
        clock: Callable[[], float] = time.time,
        password: str = "sbx",
        knobs: Mapping[str, object] | None = None,
    ) -> dict[str, FakeProvider]:
        """Every face's fake, built with the shared clock and password and the provider knobs."""
        options = SandboxOptions(clock=clock, password=password, knobs=dict(knobs or {}))
        fakes = {face.name: face.sandbox(options) for face in faces if face.sandbox is not None}
        if options.unused():
            raise TypeError(f"no provider takes the sandbox option {options.unused()[0]!r}")
        return fakes

    def fake(self, name: str, kind: type[F]) -> F:
        found = self.fakes[name]
        if not isinstance(found, kind):
            raise TypeError(f"the {name} fake is a {type(found).__name__}, not a {kind.__name__}")
        return found

    def close(self) -> None:
        """Stop holding answers: a request held by a `timeout` fault ends now (the server is shutting down)."""
        self._closing.set()

    async def _held(self) -> None:
        """A `timeout` fault's wait: until its time passes on the sandbox's clock, or `close()`."""
        async with anyio.create_task_group() as tg:

            async def wait(then: Callable[[], Awaitable[object]]) -> None:
                await then()
                tg.cancel_scope.cancel()

            tg.start_soon(wait, lambda: self._sleep(self._timeout_s))
            tg.start_soon(wait, self._closing.wait)

    def transport(self) -> httpx2.AsyncBaseTransport:
        """In-process transport: the same client code path as live, minus the network."""
        return InProcessTransport(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        response = await self._respond(scope, receive, send)
        if response is not None:
            await response(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> Response | None:
        self.requests += 1
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        segments = [unquote(part) for part in raw_path.split("/")[1:]]
        found = self._providers.get(segments[0]) if segments else None
        if found is None:
            return _not_found()
        name, provider = found
        request = Request(scope, receive)
        endpoint = provider.endpoint(request.method, segments)
        failure: Fault | None = None
        for fault in self.faults.pick(name, endpoint):
            if fault.kind == "latency":
                await self._sleep(fault.delay_s)
            elif failure is None:
                failure = fault
        if failure is not None and failure.kind == "status":
            retry_after = failure.retry_after if failure.status == 429 else None
            return provider.error(failure.status, retry_after=retry_after)
        if failure is not None and failure.kind == "timeout":
            # No answer in time. Over a socket the client's read timeout fires long before this sleep ends; in
            # process (no timeouts there) and on a test's manual clock it ends at once, so end it
            # the way the client would see it: a read timeout, not an answer (a 504 would be an answer).
            await self._held()
            raise httpx2.ReadTimeout("sandbox fault: no answer in time")
        if failure is not None and failure.kind == "drop":
            # Start a response, then break it off: over a socket the client sees an incomplete message; in
            # process, the transport re-raises this same transport error.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise httpx2.RemoteProtocolError("sandbox fault: connection dropped")
        if self.store is None:
            response = await provider.handle(request, segments)
        else:
            response = await self._handle_stored(self.store, provider, request, segments)
        if failure is not None and failure.kind == "applied-500":
            return provider.error(500)
        return response

    def export_state(self) -> dict[str, object]:
        return {"version": 1, **{name: fake.export_state() for name, fake in self.fakes.items()}}

    def import_state(self, data: object) -> None:
        """Restore `export_state()`; anything else (another version, a damaged file) means the seeds."""
        saved = data if isinstance(data, dict) and data.get("version") == 1 else {}
        for name, fake in self.fakes.items():
            fake.import_state(saved.get(name))

    async def _handle_stored(
        self, store: SandboxStore, provider: FakeProvider, request: Request, segments: list[str]
    ) -> Response:
        # Shielded: a cancelled wait for the lock must still hand the lock back once the thread has it.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.acquire)
        try:
            loaded = store.load()
            if loaded is not None:
                self.import_state(loaded)
                self._saved = json.dumps(self.export_state(), sort_keys=True)
            response = await provider.handle(request, segments)
            state = self.export_state()
            text = json.dumps(state, sort_keys=True)
            if text != self._saved:
                store.save(state)
                self._saved = text
            return response
        finally:
            store.release()
