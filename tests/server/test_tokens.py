"""Confirmation tokens: bound to tool, arguments and target; single use; expiring; unforgeable."""

from __future__ import annotations

import pytest

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.tokens import TokenSigner, canonical_args
from tests.support import ManualClock

ARGS = {"cluster_id": "c", "pool_name": "web", "size": 12}


def _signer(clock: ManualClock, secret: bytes | None = b"s" * 32) -> TokenSigner:
    return TokenSigner(secret, 300, clock)


async def _rejection(signer: TokenSigner, token: str, **overrides: object) -> str:
    call: dict[str, object] = {"tool": "t", "args": ARGS, "target": "f1", **overrides}
    with pytest.raises(PoolpilotError) as caught:
        await signer.redeem(token, call["tool"], call["args"], call["target"])  # type: ignore[arg-type]
    assert caught.value.info.code == "confirmation_invalid"
    assert "nothing was changed" in caught.value.info.message
    return caught.value.info.message


async def test_token_redeems_once_for_the_same_call() -> None:
    clock = ManualClock()
    signer = _signer(clock)
    token, _ = signer.issue("t", ARGS, "f1")
    await signer.redeem(token, "t", dict(ARGS), "f1")
    assert "already used" in await _rejection(signer, token)


async def test_token_rejects_other_arguments_tool_and_target() -> None:
    signer = _signer(ManualClock())
    token, _ = signer.issue("t", ARGS, "f1")
    assert "other arguments" in await _rejection(signer, token, args={**ARGS, "size": 13})
    assert "issued for t" in await _rejection(signer, token, tool="other")
    assert "target changed" in await _rejection(signer, token, target="f2")
    await signer.redeem(token, "t", ARGS, "f1")  # none of the rejections consumed it


async def test_token_expires() -> None:
    clock = ManualClock()
    signer = _signer(clock)
    token, expires = signer.issue("t", ARGS, "f1")
    assert expires == pytest.approx(clock.now + 300, abs=1)
    clock.advance(301)
    assert "expired" in await _rejection(signer, token)


async def test_token_forged_or_from_another_key_is_rejected() -> None:
    clock = ManualClock()
    token, _ = _signer(clock, b"a" * 32).issue("t", ARGS, "f1")
    assert "signature mismatch" in await _rejection(_signer(clock, b"b" * 32), token)
    body, mac = token.split(".")
    assert "signature mismatch" in await _rejection(_signer(clock, b"a" * 32), body[:-2] + "AA." + mac)
    assert "malformed" in await _rejection(_signer(clock), "not-a-token")


async def test_shared_secret_lets_replicas_accept_each_others_tokens() -> None:
    clock = ManualClock()
    token, _ = _signer(clock, b"k" * 32).issue("t", ARGS, "f1")
    await _signer(clock, b"k" * 32).redeem(token, "t", ARGS, "f1")


async def test_per_process_key_rejects_tokens_of_another_process() -> None:
    clock = ManualClock()
    token, _ = _signer(clock, None).issue("t", ARGS, "f1")
    assert "signature mismatch" in await _rejection(_signer(clock, None), token)


def test_canonical_args_ignore_omitted_nulls_and_the_token() -> None:
    assert canonical_args({"a": 1, "b": None, "confirm_token": "x"}) == canonical_args({"a": 1})
