"""Safety classes, tool annotations, and the confirmation guard for destructive tools.

A destructive tool never acts on the first call. It asks the user through MCP elicitation when the client
can be asked (a resolver returning `Elicit`), otherwise it returns a preview plus a single-use token bound to
the tool, the canonical arguments and the target's fingerprint (`server/tokens.py`). The safety class is the
one constant that sets both the MCP annotations and what the guard enforces, so they cannot drift apart.

Tools declare themselves with `server/kernel/tooldef.py` (`@tool` for reads and writes, `@guarded` for
destructive tools), which wires the plan resolver, the ask resolver (`Guard.ask`) and `Guard.decide` around the
body. Resolvers re-run each round, so keep them read-only; the question text comes from the preview, so keep
clocks and counters out of previews.

`Plan.no_change="why"` when the target already is in the requested state: nothing is asked or sent. A WRITE
tool (create) calls `guard.start_write(...)` right before its upstream mutation instead (audit first; if the
audit log fails, the call is refused) and returns `outcome="executed"` with the created object.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from mcp.server.mcpserver import Context, Elicit, ElicitationResult
from mcp.server.mcpserver.resolve import AcceptedElicitation, CancelledElicitation, DeclinedElicitation
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from poolpilot.server.kernel.audit import AuditLog
from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.text import escape, label, shown
from poolpilot.server.kernel.tokens import TokenSigner

__all__ = [
    "Change",
    "Confirm",
    "ConfirmToken",
    "Decision",
    "Guard",
    "GuardedResult",
    "NotAsked",
    "Plan",
    "Preview",
    "Safety",
    "can_elicit",
    "unanswered_decline",
]


class Safety(enum.Enum):
    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"

    def annotations(self, title: str | None = None) -> ToolAnnotations:
        # Set all four hints: the spec's defaults are pessimistic, and a default readOnlyHint=false makes
        # clients ask for approval on safe reads.
        return ToolAnnotations(
            title=title,
            read_only_hint=self is Safety.READ,
            destructive_hint=self is Safety.DESTRUCTIVE,
            idempotent_hint=self is Safety.READ,
            open_world_hint=True,
        )


ConfirmToken = Annotated[
    str | None,
    Field(description="Token from this call's preview; only after the user agreed", max_length=512),
]


class Confirm(BaseModel):
    """What the user answers in the elicitation form."""

    confirm: bool = Field(description="Apply this change")


class NotAsked(BaseModel):
    """The resolver's explicit "this client was not asked" marker: never read as a yes."""

    reason: str


class Change(BaseModel):
    field: str
    before: str | int | bool | None
    after: str | int | bool | None


class Preview(BaseModel):
    action: str
    target: str
    changes: list[Change] = Field(default_factory=list)
    impact: str

    def diff(self) -> str:
        """The changes as prose: only fields that change, a removal lists what goes (not `x → None`). Values come
        from the provider, so strings are quoted (server/kernel/text.py)."""
        changed = [c for c in self.changes if c.before != c.after]
        if changed and all(c.after is None for c in changed):
            return "removes " + ", ".join(f"{label(c.field)} {shown(c.before)}" for c in changed)
        return "; ".join(
            f"{label(c.field)} {shown(c.before)} removed"
            if c.after is None
            else f"{label(c.field)} {shown(c.after)}"
            if c.before is None
            else f"{label(c.field)} {shown(c.before)} → {shown(c.after)}"
            for c in changed
        )

    def text(self) -> str:
        """The question's body. Callers quote provider names in target and impact; `escape` is the backstop that
        keeps any hidden character that still got in from adding a line or reordering the question."""
        diff = self.diff()
        body = f"{self.action}: {self.target}" + (f" ({diff})" if diff else "")
        return escape(f"{body}. Impact: {self.impact}")


T = TypeVar("T")


@dataclass
class Plan(Generic[T]):
    """What a guarded call would do, computed from fresh reads: the preview, the target's fingerprint and the
    provider-specific data the body needs. `no_change` says why nothing needs doing (then nothing is asked)."""

    preview: Preview
    fingerprint: str
    data: T
    no_change: str | None = None


Outcome = Literal["executed", "confirmation_required", "declined", "cancelled", "no_change"]
ConfirmedBy = Literal["elicitation", "token", "off"]


class GuardedResult(BaseModel):
    """Fields every guarded tool's result carries (providers add their own)."""

    backend: str
    outcome: Outcome
    executed: bool
    confirmation_required: bool
    message: str
    preview: Preview | None = None
    confirm_token: str | None = None
    expires_at: str | None = None
    confirmed_by: ConfirmedBy | None = None


@dataclass(frozen=True)
class Decision:
    approved: bool
    outcome: Outcome
    message: str
    preview: Preview
    confirmed_by: ConfirmedBy | None = None
    confirm_token: str | None = None
    expires_at: str | None = None

    def result_fields(self, backend: str) -> dict[str, object]:
        """Keyword arguments for a `GuardedResult` subclass describing this decision."""
        return {
            "backend": backend,
            "outcome": self.outcome,
            "executed": False,
            "confirmation_required": self.outcome == "confirmation_required",
            "message": self.message,
            "preview": self.preview,
            "confirm_token": self.confirm_token,
            "expires_at": self.expires_at,
            "confirmed_by": self.confirmed_by,
        }


# How the SDK words an accepted answer that carries no usable content (both protocol generations): the resolver
# raises before the tool body runs. That is no "yes": it becomes a decline (`unanswered_decline`).
_UNANSWERED = {
    "accepted elicitation with no content": "the user accepted without giving an answer",
    "does not match the requested schema": "the answer did not fit the question's form",
    "invalid elicitation response": "the answer did not fit the question's form",
}


def unanswered_decline(error: Exception, backend: str) -> CallToolResult | None:
    """The decline a guarded call ends in when the client accepted the question without a usable answer
    (nothing was sent): an ordinary result, like every decline; None for any other error."""
    text = str(error).lower()
    reason = next((why for marker, why in _UNANSWERED.items() if marker in text), None)
    if reason is None:
        return None
    message = f"Nothing was changed: {reason}. Call the tool again to ask once more."
    result = GuardedResult(
        backend=backend, outcome="declined", executed=False, confirmation_required=False, message=message
    )
    data = result.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data))], structured_content=data)


def can_elicit(ctx: Context) -> bool:
    """The client declared form elicitation, and the question can reach it on this connection."""
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, "2026-07-28"):
        return True  # asks ride input-required rounds; can_send_request is always false here
    return bool(ctx.session.can_send_request)  # handshake-era needs a back-channel (not stateless HTTP)


class Guard:
    def __init__(self, *, mode: Literal["auto", "token", "off"], signer: TokenSigner, audit: AuditLog) -> None:
        self.mode = mode
        self.signer = signer
        self.audit = audit

    def ask(self, ctx: Context, plan: Plan[T], confirm_token: str | None) -> Elicit[Confirm] | NotAsked:
        """The resolver body: ask only when the client can answer and nothing else already decides."""
        if plan.no_change is not None:
            return NotAsked(reason="no change needed")
        if self.mode != "auto":
            return NotAsked(reason=f"confirm mode {self.mode}")
        if confirm_token is not None:
            return NotAsked(reason="token presented")
        if not can_elicit(ctx):
            return NotAsked(reason="client cannot be asked on this connection")
        # Same text every round (no clock, no counters): a changed question is asked again. The fingerprint makes
        # any change of the target change the question, so on 2026-07-28 connections (where every round plans
        # afresh) an answer given to an older state is never applied to a newer one.
        return Elicit(f"{plan.preview.text()} Proceed? (state {plan.fingerprint[:8]})", Confirm)

    async def decide(
        self,
        *,
        tool: str,
        args: Mapping[str, object],
        plan: Plan[T],
        approval: ElicitationResult[Confirm] | AcceptedElicitation[NotAsked],
        confirm_token: str | None,
        replan: Callable[[], Awaitable[Plan[T]]],
        backend: str,
    ) -> tuple[Decision, Plan[T]]:
        """Approve, decline, or issue a token; returns the decision and the plan to execute (fresh)."""
        preview = plan.preview
        await self.signer.nonces.ready()  # with a shared store configured, no decision without it (fail closed)
        if confirm_token is not None:
            # Checked before anything else: a replayed or stale token is refused as such, even when the target
            # meanwhile reached the requested state.
            await self.signer.redeem(confirm_token, tool, args, plan.fingerprint)
        if plan.no_change is not None:
            return Decision(False, "no_change", plan.no_change, preview), plan
        if self.mode == "off":
            return self._approved(tool, args, plan, "off", backend), plan
        if confirm_token is not None:
            return self._approved(tool, args, plan, "token", backend), plan
        if isinstance(approval, DeclinedElicitation) or (
            isinstance(approval, AcceptedElicitation)
            and isinstance(approval.data, Confirm)
            and not approval.data.confirm
        ):
            return Decision(False, "declined", "The user declined; nothing was changed.", preview), plan
        if isinstance(approval, CancelledElicitation):
            return Decision(False, "cancelled", "The user cancelled; nothing was changed.", preview), plan
        if isinstance(approval, AcceptedElicitation) and isinstance(approval.data, Confirm):
            # A handshake-era question may have waited minutes for its answer: act only on the state the user saw.
            fresh = await replan()
            if fresh.fingerprint != plan.fingerprint or fresh.no_change is not None:
                raise PoolpilotError(
                    ErrorInfo(
                        code="confirmation_invalid",
                        message="the target changed while the user was being asked; nothing was changed",
                        hint="Call the tool again to get a fresh preview and ask the user again.",
                    )
                )
            return self._approved(tool, args, fresh, "elicitation", backend), fresh
        token, expires = self.signer.issue(tool, args, plan.fingerprint)
        expires_at = datetime.fromtimestamp(expires, UTC).isoformat()
        message = (
            "Nothing was changed. Show this preview to the user; only if they agree, call "
            f"{tool} again with the same arguments plus confirm_token (single use, expires {expires_at})."
        )
        decision = Decision(False, "confirmation_required", message, preview, None, token, expires_at)
        return decision, plan

    def start_write(self, *, tool: str, args: Mapping[str, object], target: str, backend: str) -> None:
        """Audit a WRITE call before it is sent; if the audit log cannot take it, the call is refused."""
        self.audit.write(
            {
                "tool": tool,
                "arguments": {k: v for k, v in args.items() if k != "confirm_token"},
                "target": target,
                "backend": backend,
                "outcome": "started",
            }
        )

    def _approved(
        self, tool: str, args: Mapping[str, object], plan: Plan[T], by: ConfirmedBy, backend: str
    ) -> Decision:
        # Written before the change: if the audit log cannot take it, the change is refused.
        self.start_write(tool=tool, args=args, target=plan.preview.target, backend=backend)
        return Decision(True, "executed", "Done.", plan.preview, by)
