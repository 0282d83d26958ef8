"""The CLI's state directory: separate sandboxes on one store see each other's changes; damage means the seeds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx2
import pytest

from poolpilot.server.kernel.config import ConfigError
from poolpilot.server.shell.localstate import FileNonces, FileStore, confirm_secret, reset
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

PG_MAIN = "7f3d9a4b-2c6e-4b8f-a1d2-5e9c0b7a4f02"
AUTH = {"Authorization": "Bearer t"}


async def _dbs(client: httpx2.AsyncClient) -> list[str]:
    response = await client.get(f"/v2/databases/{PG_MAIN}/dbs", headers=AUTH)
    return [db["name"] for db in response.json()["dbs"]]


async def test_two_sandboxes_on_one_store_interleave_without_losing_a_change(tmp_path: Path) -> None:
    first, second = Sandbox(), Sandbox()
    first.store, second.store = FileStore(tmp_path), FileStore(tmp_path)
    async with (
        httpx2.AsyncClient(transport=first.transport(), base_url="http://a") as a,
        httpx2.AsyncClient(transport=second.transport(), base_url="http://b") as b,
    ):
        for client, name in ((a, "one"), (b, "two"), (a, "three")):
            response = await client.post(f"/v2/databases/{PG_MAIN}/dbs", json={"name": name}, headers=AUTH)
            assert response.status_code == 201
        assert (await _dbs(b))[-3:] == ["one", "two", "three"]
        reset(tmp_path)
        assert "one" not in await _dbs(a)  # a reset is seen by a sandbox that loaded the state before


async def test_a_damaged_state_file_starts_from_the_seeds(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text('{"version": 1, "digitalocean": ')
    os.chmod(tmp_path / "sandbox.json", 0o600)
    sandbox = Sandbox()
    sandbox.store = FileStore(tmp_path)
    async with httpx2.AsyncClient(transport=sandbox.transport(), base_url="http://a") as client:
        assert await _dbs(client) == ["defaultdb", "app", "analytics", "reporting"]


def test_confirm_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    secret = confirm_secret(tmp_path)
    assert len(secret) == 64 and confirm_secret(tmp_path) == secret
    assert [p.name for p in tmp_path.iterdir()] == ["confirm-secret"]  # no temp file left behind


def test_confirm_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    confirm_secret(tmp_path)
    os.chmod(tmp_path / "confirm-secret", 0o644)
    with pytest.raises(ConfigError, match="sandbox reset"):
        confirm_secret(tmp_path)


async def test_a_nonce_is_claimed_once_across_stores_until_it_expires(tmp_path: Path) -> None:
    now = [1_790_000_000.0]
    first, second = FileNonces(tmp_path, lambda: now[0]), FileNonces(tmp_path, lambda: now[0])
    assert await first.claim("n1", 60)
    assert not await second.claim("n1", 60)  # another process: the same token does not work twice
    assert await second.used("n1") and not await second.used("n2")
    now[0] += 61
    assert await second.claim("n1", 60)  # expired entries are forgotten (the token itself has expired too)
    assert stat.S_IMODE((tmp_path / "nonces.json").stat().st_mode) == 0o600
