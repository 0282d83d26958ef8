"""Build the MCP server: toolsets, filters, lifespan (provider clients), error mapping, redaction, audit."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from mcp_types import Tool as MCPTool
from pydantic import ValidationError

from poolpilot.server.kernel.audit import AuditLog
from poolpilot.server.kernel.config import ConfigError, Settings
from poolpilot.server.kernel.errors import (
    ErrorInfo,
    PoolpilotError,
    from_validation_error,
    internal_error,
    render_error,
)
from poolpilot.server.kernel.guard import Guard, Safety
from poolpilot.server.kernel.redact import RedactingFilter, Redactor
from poolpilot.server.kernel.state import AppState, OpenContext, Toolset, ToolSpec
from poolpilot.server.kernel.tokens import REQUEST_STATE_LABEL, TokenSigner, derive_key

__all__ = ["TOOLSET_MODULES", "PoolpilotServer", "build_app", "load_toolsets", "select_tools"]

log = logging.getLogger("poolpilot")

# One line per provider: adding one means adding its folder and a line here.
TOOLSET_MODULES: dict[str, str] = {
    "digitalocean": "poolpilot.tools.digitalocean.tools",
    "taurusdb": "poolpilot.tools.taurusdb.tools",
    "pgbouncer": "poolpilot.tools.pgbouncer.tools",
    "pools": "poolpilot.tools.pools.tools",
}


def load_toolsets(names: tuple[str, ...] | None = None) -> list[Toolset]:
    chosen = names if names is not None else tuple(TOOLSET_MODULES)
    return [importlib.import_module(TOOLSET_MODULES[n]).TOOLSET for n in chosen]


def default_toolsets(settings: Settings) -> tuple[str, ...]:
    """Every provider, except PgBouncer when no instance is configured (it has no sandbox)."""
    return tuple(n for n in TOOLSET_MODULES if n != "pgbouncer" or settings.pgbouncer)


def select_tools(settings: Settings) -> tuple[list[Toolset], list[ToolSpec], dict[str, str]]:
    """The enabled toolsets, the tools to register, and why each other known tool is hidden."""
    unknown = [n for n in settings.toolsets or () if n not in TOOLSET_MODULES]
    if unknown:
        raise ConfigError("--toolsets", f"unknown toolset {unknown[0]!r}", "use " + ", ".join(TOOLSET_MODULES))
    names = settings.toolsets if settings.toolsets is not None else default_toolsets(settings)
    if "pgbouncer" in names and not settings.pgbouncer:
        raise ConfigError(
            "--toolsets", "pgbouncer has no instance configured", "set POOLPILOT_PGBOUNCER_<NAME>_DSN (see README)"
        )
    toolsets = load_toolsets(names)
    known = {spec.name for ts in load_toolsets() for spec in ts.tools}
    missing = [t for t in settings.tools or () if t not in known]
    if missing:
        raise ConfigError("--tools", f"unknown tool {missing[0]!r}", "run `poolpilot tools` for the names")
    hidden: dict[str, str] = {}
    chosen: list[ToolSpec] = []
    for ts in load_toolsets():
        for spec in ts.tools:
            if ts not in toolsets:
                hidden[spec.name] = "tool_not_allowed"
            elif settings.read_only and spec.safety is not Safety.READ:
                hidden[spec.name] = "read_only"
            elif settings.tools is not None and spec.name not in settings.tools:
                hidden[spec.name] = "tool_not_allowed"
            else:
                chosen.append(spec)
    return toolsets, chosen, hidden


def _compact_schema(node: object, parent_key: str | None = None) -> object:
    """Input schemas without pydantic's noise: no `title` (a property *named* title is kept), `X | None` as
    `type: [X, "null"]` instead of an `anyOf`, no `default: null`. Descriptions and limits stay: models read them."""
    if isinstance(node, list):
        return [_compact_schema(v, parent_key) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str) and parent_key != "properties":
            continue
        if key == "default" and value is None and parent_key != "properties":
            continue
        out[key] = _compact_schema(value, key)
    variants = out.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and {"type": "null"} in variants:
        other = next(v for v in variants if v != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out = {**other, **out, "type": [other["type"], "null"]}
    return out


def _shallow(prop: object) -> dict[str, object]:
    """One output property reduced to its JSON type (nullable kept), so the schema still validates the result."""
    if not isinstance(prop, dict):
        return {}
    if isinstance(prop.get("anyOf"), list):
        return {}  # optional or union-typed: any JSON value (the field name and the JSON text say enough)
    if "$ref" in prop or "properties" in prop:
        return {"type": "object"}
    kind = prop.get("type")
    return {"type": kind} if isinstance(kind, str | list) else {}


def _outline(schema: dict[str, object]) -> dict[str, object]:
    """The result's top-level fields and their types. Every result is also returned as JSON text, so nested
    shapes need no schema in tools/list, where each byte is paid for on every turn of every session."""
    props = schema.get("properties")
    outline: dict[str, object] = {"type": "object"}
    if isinstance(props, dict):
        outline["properties"] = {name: _shallow(prop) for name, prop in props.items()}
    return outline


class PoolpilotServer(MCPServer[AppState]):
    """MCPServer with one error model, one redaction pass and one audit line per mutating call."""

    def __init__(self, *, specs: list[ToolSpec], hidden: Mapping[str, str], state: AppState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = {s.name: s for s in specs}
        self.hidden = dict(hidden)
        self.state = state
        self._tool_cache: list[MCPTool] | None = None

    async def list_tools(self) -> list[MCPTool]:
        if self._tool_cache is None:
            tools = await super().list_tools()
            self._tool_cache = [
                t.model_copy(
                    update={
                        "input_schema": _compact_schema(t.input_schema),
                        "output_schema": _outline(t.output_schema) if t.output_schema else None,
                    }
                )
                for t in tools
            ]
        return self._tool_cache

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        spec = self.specs.get(name)
        if spec is None:
            result = render_error(self._refusal(name))
        else:
            outcome = await self._run(name, arguments, context)
            if isinstance(outcome, InputRequiredResult):
                return outcome
            result = outcome
        result = self._redacted(result)
        if spec is not None and spec.safety is not Safety.READ:
            self._audit(spec, arguments, result, context)
        return result

    async def _run(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except MCPError:
            raise
        except ToolError as exc:
            return render_error(self._error_info(name, exc))

    def _error_info(self, name: str, exc: ToolError) -> ErrorInfo:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, PoolpilotError):
                return cause.info
            if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
                return from_validation_error(cause, name)
            cause = cause.__cause__
        info = internal_error()
        log.error("incident %s in %s", info.incident_id, name, exc_info=exc)
        return info

    def _refusal(self, name: str) -> ErrorInfo:
        reason = self.hidden.get(name)
        if reason == "read_only":
            return ErrorInfo(
                code="read_only",
                message=f"{name} changes things and this server runs read-only; nothing was changed",
                hint="Use the read tools, or ask the operator to restart poolpilot without --read-only.",
            )
        if reason is not None:
            return ErrorInfo(
                code="tool_not_allowed",
                message=f"{name} is not enabled on this server (--tools/--toolsets)",
                hint="Use one of the tools from tools/list, or ask the operator to enable it.",
            )
        return ErrorInfo(
            code="validation_error",
            message=f"there is no tool named {name!r}",
            field="name",
            hint="Call tools/list for the available tool names.",
        )

    def _redacted(self, result: CallToolResult) -> CallToolResult:
        redactor, allow = self.state.redactor, self.state.settings.allow_secrets
        raw = result.structured_content
        structured = redactor.value(raw, allow_connection_secrets=allow) if raw is not None else None
        content = [
            TextContent(type="text", text=self._redacted_text(c.text, raw, structured))
            if isinstance(c, TextContent)
            else c
            for c in result.content
        ]
        return result.model_copy(update={"content": content, "structured_content": structured})

    def _redacted_text(self, text: str, raw: dict[str, Any] | None, structured: dict[str, Any] | None) -> str:
        """A text block that is the SDK's indented JSON of the structured result becomes the compact JSON of the
        already redacted structured result: one redaction pass instead of two, and a third fewer bytes to send and
        parse on every call (issue 9). Any other text (errors, hand-written text) is redacted as it is."""
        if structured is not None and text.startswith("{"):
            try:
                same = json.loads(text) == raw
            except ValueError:
                same = False
            if same:
                return json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        return self.state.redactor.text(text, allow_connection_secrets=self.state.settings.allow_secrets)

    def _audit(
        self,
        spec: ToolSpec,
        arguments: Mapping[str, Any],
        result: CallToolResult,
        context: Context[AppState, Any] | None,
    ) -> None:
        data = result.structured_content or {}
        preview = data.get("preview") if isinstance(data.get("preview"), dict) else None
        job = data.get("job") if isinstance(data.get("job"), dict) else None
        client = None
        if context is not None:
            params = context.session.client_params if context.request_context is not None else None
            if params is not None:
                client = f"{params.client_info.name}/{params.client_info.version}"
        record = {
            "tool": spec.name,
            "safety": spec.safety.value,
            "arguments": {k: v for k, v in arguments.items() if k != "confirm_token"},
            "target": (preview or {}).get("target") or data.get("target"),
            "backend": data.get("backend"),
            "outcome": ("failed:" + str(data.get("code"))) if result.is_error else data.get("outcome", "executed"),
            "confirmed_by": data.get("confirmed_by"),
            "job_id": (job or {}).get("job_id"),
            "client": client,
        }
        try:
            self.state.audit.write(record)
        except PoolpilotError:
            log.error("audit log write failed for %s (outcome %s)", spec.name, record["outcome"])


def _instructions(settings: Settings, toolsets: list[Toolset]) -> str:
    parts = []
    for ts in toolsets:
        backend = settings.provider_backend(ts.name)
        label = "SANDBOX (demo data, not production)" if backend == "sandbox" else "LIVE (real resources)"
        parts.append(f"{ts.name}: {label}")
    return (
        "poolpilot manages database connection pools. Backends: " + "; ".join(parts) + ". Every result says "
        "which backend answered. Destructive tools never act on the first call: they ask the user, or return a "
        "preview and a confirm_token; show the preview to the user and pass the token only after they agree."
    )


def configure_logging(redactor: Redactor, level: str = "WARNING") -> None:
    """Logs go to stderr only (stdout is the stdio protocol), through the redacting filter."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
    root.setLevel(level)


def build_app(
    settings: Settings,
    *,
    sandbox: Any | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    jitter: Callable[[], float] | None = None,
    audit: AuditLog | None = None,
) -> PoolpilotServer:
    """The whole server for `settings`. Tests pass their own `sandbox` (to inspect its state), `clock`, `sleep`
    and `jitter` (every provider's retry backoff draws from it)."""
    toolsets, specs, hidden = select_tools(settings)
    redactor = Redactor(settings.secrets())
    configure_logging(redactor)
    audit_log = audit or AuditLog(settings.audit_log or "-", redactor, clock)
    guard = Guard(
        mode=settings.confirm,
        signer=TokenSigner(settings.confirm_secret, settings.confirm_ttl_s, clock),
        audit=audit_log,
    )
    needs_sandbox = any(settings.provider_backend(ts.name) == "sandbox" for ts in toolsets)
    if needs_sandbox and sandbox is None:
        from poolpilot.server.kernel.sandbox import (  # only when used: keeps `serve` on live creds lean
            FaultPlan,
            Sandbox,
        )

        plan = FaultPlan()
        for rule in settings.sandbox_faults:
            plan.add(rule)
        job = settings.sandbox_job_seconds
        sandbox = Sandbox(faults=plan) if job is None else Sandbox(faults=plan, job_seconds=(job / 3, job))
    state = AppState(settings=settings, guard=guard, audit=audit_log, redactor=redactor, sandbox=sandbox)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as stack:
            opened = OpenContext(settings=settings, redactor=redactor, sandbox=sandbox, clock=clock)
            if sleep is not None:
                opened = dataclasses.replace(opened, sleep=sleep)
            if jitter is not None:
                opened = dataclasses.replace(opened, jitter=jitter)
            for ts in toolsets:
                client = await ts.open(opened)
                state.clients[ts.name] = client
                stack.push_async_callback(client.aclose)
            try:
                yield state
            finally:
                state.clients.clear()

    security = None
    if settings.confirm_secret:
        security = RequestStateSecurity(keys=[derive_key(settings.confirm_secret, REQUEST_STATE_LABEL)])
    app = PoolpilotServer(
        specs=specs,
        hidden=hidden,
        state=state,
        name="poolpilot",
        version=_version(),
        instructions=_instructions(settings, toolsets),
        lifespan=lifespan,
        request_state_security=security,
        log_level="WARNING",
    )
    for spec in specs:
        app.add_tool(spec.fn, name=spec.name, annotations=spec.safety.annotations(spec.title), structured_output=True)
    for ts in toolsets:
        if ts.extras is not None:
            ts.extras(app)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("poolpilot")
    except PackageNotFoundError:
        return "0.0.0"
