"""The call pipeline: `PoolpilotServer` is the SDK's `MCPServer` with one error model, one redaction pass and one
audit line per mutating call, applied in one place (`call_tool`) so no tool can skip them."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    ServerCapabilities,
    TextContent,
)
from mcp_types import Tool as MCPTool
from pydantic import BaseModel, ValidationError

from poolpilot.server.kernel.audit import rejected_arguments
from poolpilot.server.kernel.catalogue import connection_of
from poolpilot.server.kernel.errors import (
    ErrorInfo,
    PoolpilotError,
    from_validation_error,
    internal_error,
    render_error,
)
from poolpilot.server.kernel.guard import Safety, unanswered_decline
from poolpilot.server.kernel.redact import RedactingFilter, Redactor
from poolpilot.server.kernel.schema import compact_annotations, compact_schema, outline
from poolpilot.server.kernel.state import AppState, ToolGroup, ToolSpec
from poolpilot.server.kernel.text import quote
from poolpilot.server.kernel.toolcache import ToolCache

__all__ = ["PoolpilotServer", "configure_logging"]

log = logging.getLogger("poolpilot")


class PoolpilotServer(MCPServer[AppState]):
    """MCPServer with one error model, one redaction pass and one audit line per mutating call."""

    def __init__(
        self,
        *,
        groups: Sequence[ToolGroup],
        hidden: Mapping[str, str],
        state: AppState,
        cache: ToolCache | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Every tool a session may see, by name: its class and its group. A group's specs load and register with
        # the SDK at the first call of one of its tools (or when tools/list must be built): importing the tool
        # modules and building their models and schemas is most of start-up (issue 23).
        self.safety = {name: safety for group in groups for name, safety in group.safety.items()}
        self._groups = {name: group for group in groups for name in group.safety}
        self.specs: dict[str, ToolSpec] = {}  # the loaded ones
        self.hidden = dict(hidden)
        self.state = state
        self._cache = cache
        self._listed_tools: dict[str, MCPTool] = {}  # the listed form of each tool seen so far
        self._session_lists: dict[frozenset[str], list[MCPTool]] = {}
        self._announce_tool_list_changes()

    def register(self, spec: ToolSpec) -> None:
        """Add `spec` to the SDK's tools, with the annotations of its safety class."""
        self.add_tool(spec.fn, name=spec.name, annotations=spec.safety.annotations(spec.title), structured_output=True)

    def load(self, name: str) -> ToolSpec | None:
        """The spec of tool `name`, its group loaded and registered first if it was not (None: no such tool)."""
        spec = self.specs.get(name)
        group = self._groups.get(name)
        if spec is None and group is not None:
            for loaded in group.load():  # classes as planned: Provider.specs refuses any other
                self.specs[loaded.name] = loaded
                self.register(loaded)
            spec = self.specs.get(name)
        return spec

    def _announce_tool_list_changes(self) -> None:
        """Handshake-era clients learn from `tools.listChanged` that toolsets_enable's notification may come. The
        SDK derives capabilities from options its transports pass as None, so the flag is added where they are
        built (at 2026-07-28 the SDK ignores these options and derives the flag itself)."""
        lowlevel = self._lowlevel_server
        derive = lowlevel.get_capabilities

        def capabilities(
            notification_options: NotificationOptions | None = None,
            experimental_capabilities: dict[str, dict[str, Any]] | None = None,
            extensions: dict[str, dict[str, Any]] | None = None,
            *,
            protocol_version: str | None = None,
        ) -> ServerCapabilities:
            options = notification_options or NotificationOptions()
            options.tools_changed = bool(self.state.toolsets.dynamic)
            return derive(options, experimental_capabilities, extensions, protocol_version=protocol_version)

        setattr(lowlevel, "get_capabilities", capabilities)  # noqa: B010 (an instance attribute on purpose)

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        # The SDK's handler asks list_tools() without the request; the session's toolsets need it.
        connection = getattr(ctx.session, "_connection", None)
        return ListToolsResult(tools=await self.session_tools(self.state.toolsets.enabled(connection)))

    async def session_tools(self, enabled: frozenset[str]) -> list[MCPTool]:
        """tools/list for a session that enabled `enabled` toolsets at run time (cached per set)."""
        found = self._session_lists.get(enabled)
        if found is None:
            dynamic = self.state.toolsets.dynamic
            found = await self._listed([n for n in self.safety if n not in dynamic or dynamic[n] in enabled])
            self._session_lists[enabled] = found
        return found

    async def list_tools(self) -> list[MCPTool]:
        """The tools every session starts with."""
        return await self.session_tools(frozenset())

    async def _listed(self, names: list[str]) -> list[MCPTool]:
        """The listed form of `names`, in that order: from the tool cache when it has every one not seen yet, else
        built (their toolsets loaded and registered) and written to the cache for the next start."""
        missing = [name for name in names if name not in self._listed_tools]
        if missing:
            cached = self._cache.get(missing) if self._cache is not None else None
            try:
                read = [MCPTool.model_validate(tool) for tool in cached] if cached is not None else None
            except ValidationError:  # a file that is not what this code wrote: built instead
                read = None
            if read is not None:
                self._listed_tools.update((tool.name, tool) for tool in read)
            else:
                for name in missing:
                    self.load(name)
                wanted = set(missing)
                built = {
                    t.name: t.model_copy(
                        update={
                            "input_schema": compact_schema(t.input_schema),
                            "output_schema": outline(t.output_schema) if t.output_schema else None,
                            "annotations": compact_annotations(t.annotations),
                        }
                    )
                    for t in await super().list_tools()
                    if t.name in wanted
                }
                self._listed_tools.update(built)
                if self._cache is not None:
                    self._cache.put({n: built[n].model_dump(mode="json", by_alias=True) for n in missing})
        return [self._listed_tools[name] for name in names]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if not self.state.opened:  # the providers' clients open at the first call
            try:
                await self.state.ready()
            except PoolpilotError as exc:  # one error model for every failure; the next call tries again
                return self._redacted(render_error(exc.info))
            except Exception as exc:
                info = internal_error()
                log.error("incident %s opening the provider clients for %s", info.incident_id, name, exc_info=exc)
                return self._redacted(render_error(info))
        toolsets = self.state.toolsets
        # Only a tool of a run-time toolset depends on the session (reading it costs a third of a read's own time).
        if name in toolsets.dynamic and not toolsets.visible(name, connection_of(context)):
            spec = None
        else:
            spec = self.load(name)
        if spec is not None and spec.safety is Safety.READ:
            return await self._read(name, arguments, context)  # no guard, no audit, one serialisation
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
            declined = None  # a guarded call whose question was accepted without an answer: a decline
            if self.safety[name] is Safety.DESTRUCTIVE:
                declined = unanswered_decline(exc, self.state.settings.provider_backend(name.split("_", 1)[0]))
            return declined or render_error(self._error_info(name, exc))

    async def _read(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        """A read takes the shortest path (issue 23): the SDK validates the arguments and runs the tool, the result
        model is dumped once, redacted only when its JSON shows something a redaction could change, and that same
        JSON is the text block. Anything but a plain result model (an error, a wrapped or aliased output) goes the
        SDK's way and through the full redaction pass, so the result is the same JSON either way."""
        tool = self._tool_manager.get_tool(name)
        if tool is None:  # every spec is registered as a tool; answered like an unknown name if one is not
            return self._redacted(render_error(self._refusal(name)))
        if context is None:
            context = Context(mcp_server=self, subscriptions=self._subscriptions)
        try:
            value = await tool.run(arguments, context)
        except MCPError:
            raise
        except ToolError as exc:
            return self._redacted(render_error(self._error_info(name, exc)))
        meta = tool.fn_metadata
        fast = isinstance(value, BaseModel) and not meta.wrap_output and type(value) is meta.output_model
        if not fast or _aliased(type(value)):
            try:
                converted = meta.convert_result(value)
            except MCPError:
                raise
            except Exception as exc:  # as the SDK's Tool.run reports a failed conversion: a crash, text kept here
                wrapped = UnexpectedToolError(f"Error executing tool {name}")
                wrapped.__cause__ = exc
                return self._redacted(render_error(self._error_info(name, wrapped)))
            return converted if isinstance(converted, InputRequiredResult) else self._redacted(converted)
        assert isinstance(value, BaseModel)
        return self._serialised(value)

    def _serialised(self, value: BaseModel) -> CallToolResult:
        """The result model as the SDK would build it and `_redacted` would rewrite it, in one dump: the structured
        content, and its compact JSON as the text block."""
        structured: dict[str, Any] = value.model_dump(mode="json", by_alias=True)
        text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        redactor = self.state.redactor
        if not redactor.clean(text):
            structured = redactor.value(structured, allow_connection_secrets=self.state.settings.allow_secrets)
            text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)

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
        toolset = self.state.toolsets.dynamic.get(name)
        if toolset is not None:
            return ErrorInfo(
                code="tool_not_allowed",
                message=f"{name} belongs to the toolset {toolset}, which is off in this session",
                hint=f"Call toolsets_enable with toolset={toolset}, or ask the operator for --toolsets {toolset}.",
            )
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
            message=f"there is no tool named {quote(name, limit=64)}",
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
        kept = {k: v for k, v in arguments.items() if k != "confirm_token"}
        if result.is_error and data.get("code") == "validation_error":
            kept = rejected_arguments(kept, data.get("field"))  # a rejected value may be a secret or a lure
        record = {
            "tool": spec.name,
            "safety": spec.safety.value,
            "arguments": kept,
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


_ALIASED: dict[type[BaseModel], bool] = {}


def _aliased(model: type[BaseModel]) -> bool:
    """Whether a result model dumps any field under another name (its JSON text would then differ from the SDK's)."""
    found = _ALIASED.get(model)
    if found is None:
        fields = model.model_fields.items()
        found = _ALIASED[model] = any(
            f.alias not in (None, n) or f.serialization_alias not in (None, n) for n, f in fields
        )
    return found


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
