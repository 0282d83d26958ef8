"""tools/list is API: a snapshot of every tool's name, description, annotations and schemas.

A change to any of them fails here until the snapshot is regenerated on purpose
(`POOLPILOT_UPDATE_SNAPSHOTS=1 pytest tests/server/test_tools_snapshot.py`) and the diff reviewed; renaming a
tool or an argument also needs a README note.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from poolpilot.server.kernel.config import Settings
from poolpilot.server.shell.app import build_app
from poolpilot.server.shell.registry import faces
from poolpilot.tools.pgbouncer.settings import PgBouncerInstance, PgBouncerSettings
from tests.support import open_client

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


async def _tools(tmp_path: Path) -> list[dict[str, object]]:
    # Every toolset, the extra ones and PgBouncer included (its DSN is never used: listing tools connects to nothing).
    pgbouncer = PgBouncerInstance(name="edge", dsn="postgresql://admin@127.0.0.1:1/pgbouncer", ini_path=None)
    settings = Settings(
        backend="sandbox",
        audit_log=str(tmp_path / "audit.jsonl"),
        toolsets=tuple(n for face in faces() for n in face.toolset_names()),
        providers={"pgbouncer": PgBouncerSettings(instances=(pgbouncer,))},
    )
    async with open_client(build_app(settings)) as client:
        tools = (await client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


async def test_tools_list_matches_the_snapshot(tmp_path: Path) -> None:
    current = json.dumps(await _tools(tmp_path), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("POOLPILOT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert current == SNAPSHOT.read_text(encoding="utf-8"), "tools/list changed: review, then regenerate"
