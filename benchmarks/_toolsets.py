"""tools/list bytes for the default tool set and for every toolset on (issue 22): the default list is what an agent
reads first (at most 16 tools); the full one is what `--toolsets` naming everything costs."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from _procs import SERVE, server_env
from _report import Plan, Report, Row, verdict
from _stdio import raw_list

from poolpilot.server.shell.registry import faces

# Listing tools connects to nothing: a closed port is enough for PgBouncer's toolsets to register.
_PGBOUNCER = {"POOLPILOT_PGBOUNCER_MAIN_DSN": "postgresql://bench@127.0.0.1:9/pgbouncer"}


async def bench_toolsets(plan: Plan, report: Report, tmp: str, errlog: TextIO) -> None:
    base = {"POOLPILOT_BACKEND": "sandbox", "POOLPILOT_AUDIT_LOG": str(Path(tmp) / "toolsets-audit.jsonl")}
    size, count, _ = await raw_list(SERVE, server_env(**base), errlog)
    every = ",".join(n for face in faces() for n in face.toolset_names())
    full_size, full_count, _ = await raw_list(SERVE, server_env(**base, **_PGBOUNCER, POOLPILOT_TOOLSETS=every), errlog)
    report.add(
        Row(f"tools/list, default toolsets ({count} tools)", f"{size} B", "", f"{size / count:.0f} B/tool",
            "<= 16 tools", verdict(count <= 16)),
        Row(f"tools/list, every toolset ({full_count} tools)", f"{full_size} B", f"default {size} B",
            f"{full_size / full_count:.0f} B/tool"),
    )  # fmt: skip
