"""`serve --sandbox-state` shares one sandbox and one confirmation secret with `poolpilot call`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PG_SMALL = "3b1e1c2a-5d0f-4c6e-9a41-0e2f7d8c1a01"


async def test_serve_with_sandbox_state_and_call_see_each_others_changes_and_tokens(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "POOLPILOT_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    env["PYTHONPATH"] = str(ROOT)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "poolpilot.server", "serve", "--sandbox-state"], env=env, cwd=ROOT
    )
    with (tmp_path / "stderr.txt").open("w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            preview = await client.call_tool("digitalocean_delete_pool", {"cluster_id": PG_SMALL, "pool_name": "web"})
            assert preview.structured_content is not None
            token = preview.structured_content["confirm_token"]

            base = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "HUAWEICLOUD_"))}
            base = {k: v for k, v in base.items() if not k.startswith("POOLPILOT_")}
            args = [f"cluster_id={PG_SMALL}", "pool_name=web", f"confirm_token={token}"]
            done = await anyio.run_process(
                [sys.executable, "-m", "poolpilot.server", "call", "digitalocean_delete_pool", *args],
                env={**base, **env},
                cwd=ROOT,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()  # the token of `serve` works in `call`

            listed = await client.call_tool("digitalocean_list_pools", {"cluster_id": PG_SMALL})
            assert listed.structured_content is not None
            assert [r["name"] for r in listed.structured_content["rows"]] == []  # and `serve` sees the change
