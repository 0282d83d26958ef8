"""One key per purpose from the operator's secret (confirmation tokens, the SDK's request state, the state store's
namespace), so no two uses share a key."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["derive_key"]


def derive_key(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()
