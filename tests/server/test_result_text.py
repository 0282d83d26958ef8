"""A structured result's text block is the compact JSON of the (redacted) structured content (issue 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp_types import TextContent

from tests.support import make_app, open_client

pytestmark = pytest.mark.anyio


async def test_text_block_is_compact_json_of_structured_content(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl")
    async with open_client(app) as client:
        result = await client.call_tool("digitalocean_list_clusters", {})
    assert not result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert json.loads(block.text) == result.structured_content
    assert "\n" not in block.text


async def test_error_text_stays_human_readable(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path / "audit.jsonl")
    async with open_client(app) as client:
        result = await client.call_tool(
            "digitalocean_get_cluster", {"cluster_id": "00000000-0000-4000-8000-000000000000"}
        )
    assert result.is_error
    [block] = result.content
    assert isinstance(block, TextContent)
    assert result.structured_content is not None
    assert block.text.startswith(result.structured_content["code"] + ": ")
