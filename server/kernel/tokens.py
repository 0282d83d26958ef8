"""Single-use confirmation tokens: `base64url(payload).base64url(hmac_sha256(key, payload))`.

The payload binds the tool, a hash of the canonical arguments (without the token), the target's
fingerprint, an expiry and a nonce. A redeemed nonce is claimed in the state store until the token expires:
in this process by default, or in Redis shared by every replica (server/kernel/store.py). Without a shared
store, across replicas only the fingerprint stops a replay, which leaves the window the README documents (a
target recreated identically within the token's lifetime).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping

from poolpilot.server.kernel.errors import ErrorInfo, PoolpilotError
from poolpilot.server.kernel.keys import derive_key
from poolpilot.server.kernel.store import LocalStore, StateStore

__all__ = ["TokenSigner", "canonical_args", "derive_key", "fingerprint"]

_CONFIRM_LABEL = b"poolpilot/confirm-token/v1"
REQUEST_STATE_LABEL = b"poolpilot/request-state/v1"


def canonical_args(args: Mapping[str, object]) -> str:
    """Omitted and explicit-null arguments are the same call; the token itself is never part of it."""
    kept = {k: v for k, v in args.items() if v is not None and k != "confirm_token"}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(state: object) -> str:
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str, hint: str) -> PoolpilotError:
    return PoolpilotError(ErrorInfo(code="confirmation_invalid", message=f"{message}; nothing was changed", hint=hint))


_NEW_PREVIEW = "Call the tool again without confirm_token to get a fresh preview, and show it to the user."


class TokenSigner:
    def __init__(
        self,
        secret: bytes | None,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        nonces: StateStore | None = None,
    ) -> None:
        self._key = derive_key(secret or secrets.token_bytes(32), _CONFIRM_LABEL)
        self.ttl_s = ttl_s
        self._clock = clock
        self.nonces: StateStore = nonces if nonces is not None else LocalStore(clock)

    def issue(self, tool: str, args: Mapping[str, object], target: str) -> tuple[str, float]:
        expires = self._clock() + self.ttl_s
        payload = {
            "t": tool,
            "a": hashlib.sha256(canonical_args(args).encode()).hexdigest()[:32],
            "f": target,
            "e": int(expires),
            "n": secrets.token_hex(8),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return f"{_b64(body)}.{_b64(mac)}", float(int(expires))

    async def redeem(self, token: str, tool: str, args: Mapping[str, object], target: str) -> None:
        """Accept the token once for exactly this tool, arguments and target state, or raise."""
        try:
            body_text, mac_text = token.split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise _invalid("the confirm_token is malformed", _NEW_PREVIEW) from None
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise _invalid("the confirm_token was not issued by this server (signature mismatch)", _NEW_PREVIEW)
        payload = json.loads(body)
        if payload.get("t") != tool:
            raise _invalid(f"the confirm_token was issued for {payload.get('t')}, not {tool}", _NEW_PREVIEW)
        if payload.get("a") != hashlib.sha256(canonical_args(args).encode()).hexdigest()[:32]:
            raise _invalid("the confirm_token was issued for other arguments", _NEW_PREVIEW)
        now = self._clock()
        if now > float(payload.get("e", 0)):
            raise _invalid("the confirm_token has expired", _NEW_PREVIEW)
        nonce = str(payload.get("n"))
        if payload.get("f") != target:
            # Not claimed: a refusal consumes nothing. "Already used" still wins, as the likelier explanation.
            if await self.nonces.used(nonce):
                raise _invalid("the confirm_token was already used", _NEW_PREVIEW)
            raise _invalid(
                "the target changed since the preview was made",
                "Get a fresh preview (call without confirm_token), show the user what changed, and ask again.",
            )
        # One atomic claim (SET NX in a shared store): of two concurrent redemptions, on any replicas, one wins.
        if not await self.nonces.claim(nonce, float(payload["e"]) - now + 1):
            raise _invalid("the confirm_token was already used", _NEW_PREVIEW)
