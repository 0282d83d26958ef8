"""The token path of the guarded DigitalOcean tools: every rejection sends nothing that changes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolpilot.tools.digitalocean.sandbox_seed import PG_MAIN_ID, PG_SMALL_ID
from tests.digitalocean.harness import MODES, Session, session
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

UPDATE = "digitalocean_update_pool"
ARGS = {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx", "size": 25}
SEEDED = ("transaction", 20, "app", "app")


async def _token(s: Session, tool: str = UPDATE, **args: object) -> str:
    preview = await s.ok(tool, **(args or ARGS))
    assert preview["outcome"] == "confirmation_required"
    token = preview["confirm_token"]
    assert isinstance(token, str)
    return token


async def _rejected(s: Session, tool: str, args: dict[str, object], token: str, reason: str) -> None:
    err = await s.error(tool, **args, confirm_token=token)
    assert err["code"] == "confirmation_invalid"
    assert reason in err["message"] and "nothing was changed" in err["message"]
    assert err["hint"]
    assert s.mutations() == []


@pytest.mark.parametrize("mode", MODES)
async def test_forged_token_is_rejected(tmp_path: Path, mode: str) -> None:
    async with session(tmp_path, mode=mode) as s:
        body, mac = (await _token(s)).split(".")
        await _rejected(s, UPDATE, ARGS, body + "." + mac[::-1], "signature mismatch")
        await _rejected(s, UPDATE, ARGS, "made-up", "malformed")
        assert s.pool(PG_MAIN_ID, "app-tx") == SEEDED


async def test_expired_token_is_rejected(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        s.clock.advance(301)
        await _rejected(s, UPDATE, ARGS, token, "expired")


async def test_token_for_other_arguments_is_rejected(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        await _rejected(s, UPDATE, {**ARGS, "size": 26}, token, "other arguments")
        await _rejected(s, UPDATE, {**ARGS, "pool_name": "app-session"}, token, "other arguments")


async def test_token_for_another_tool_is_rejected(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        await _rejected(
            s,
            "digitalocean_delete_pool",
            {"cluster_id": PG_MAIN_ID, "pool_name": "app-tx"},
            token,
            "issued for digitalocean_update_pool",
        )
        assert s.pool(PG_MAIN_ID, "app-tx") == SEEDED


async def test_token_after_the_target_changed_is_rejected(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        s.sandbox.digitalocean.clusters[PG_MAIN_ID].pools["app-tx"].mode = "session"  # someone else's change
        await _rejected(s, UPDATE, ARGS, token, "target changed")


async def test_token_works_once(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        done = await s.ok(UPDATE, **ARGS, confirm_token=token)
        assert done["executed"] is True
        # Put the pool back as it was, so only the nonce can stop the replay.
        s.sandbox.digitalocean.clusters[PG_MAIN_ID].pools["app-tx"].size = 20
        s.sandbox.digitalocean.calls.clear()
        await _rejected(s, UPDATE, ARGS, token, "already used")
        assert s.pool(PG_MAIN_ID, "app-tx") == SEEDED


async def test_replayed_token_on_the_changed_pool_is_rejected_and_sends_nothing(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        token = await _token(s)
        await s.ok(UPDATE, **ARGS, confirm_token=token)
        s.sandbox.digitalocean.calls.clear()
        await _rejected(s, UPDATE, ARGS, token, "already used")
        assert s.mutations() == []


async def test_delete_token_replay_meets_a_missing_pool(tmp_path: Path) -> None:
    async with session(tmp_path) as s:
        args = {"cluster_id": PG_SMALL_ID, "pool_name": "web"}
        token = await _token(s, "digitalocean_delete_pool", **args)
        await s.ok("digitalocean_delete_pool", **args, confirm_token=token)
        s.sandbox.digitalocean.calls.clear()
        err = await s.error("digitalocean_delete_pool", **args, confirm_token=token)
        assert err["code"] == "not_found" and '"web"' in err["message"]
        assert s.mutations() == []


async def test_target_changed_while_the_user_was_asked_is_refused(tmp_path: Path) -> None:
    def someone_else_changes_the_pool(sandbox: Sandbox) -> None:
        sandbox.digitalocean.clusters[PG_MAIN_ID].pools["app-tx"].db = "analytics"

    async with session(tmp_path, mode="legacy", answer="yes", on_ask=someone_else_changes_the_pool) as s:
        err = await s.error(UPDATE, **ARGS)
        assert err["code"] == "confirmation_invalid" and "changed while the user was being asked" in err["message"]
        assert s.mutations() == []


async def test_target_changed_between_rounds_asks_again_with_the_new_state(tmp_path: Path) -> None:
    # 2026-07-28: the answer comes back in a new round that re-reads the pool; a changed pool changes the question.
    def someone_else_changes_the_pool(sandbox: Sandbox) -> None:
        sandbox.digitalocean.clusters[PG_MAIN_ID].pools["app-tx"].db = "analytics"

    async with session(tmp_path, mode="auto", answer="yes", on_ask=someone_else_changes_the_pool) as s:
        done = await s.ok(UPDATE, **ARGS)
        assert len(s.asked) == 2
        assert 'db "app",' in s.asked[0] and 'db "analytics",' in s.asked[1]
        assert done["executed"] is True and done["after"]["db"] == "analytics"
