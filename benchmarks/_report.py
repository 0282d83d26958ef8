"""The benchmark's plan (how many runs), its rows, and the one table they are printed as."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version


@dataclass(frozen=True)
class Plan:
    cold_runs: int
    call_warmup: int
    call_runs: int
    call_rounds: int
    concurrency: int
    single_runs: int
    batch_rounds: int
    concurrency_repeats: int
    overview_runs: int


FULL = Plan(
    cold_runs=15, call_warmup=20, call_runs=220, call_rounds=10, concurrency=100, single_runs=5, batch_rounds=2,
    concurrency_repeats=3, overview_runs=15,
)  # fmt: skip
QUICK = Plan(
    cold_runs=3, call_warmup=5, call_runs=40, call_rounds=2, concurrency=100, single_runs=3, batch_rounds=1,
    concurrency_repeats=1, overview_runs=3,
)  # fmt: skip


@dataclass
class Row:
    measure: str
    poolpilot: str
    baseline: str
    result: str
    target: str = ""
    met: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of an even count is the lower middle value)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, for a one-line failure message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def render(report: Report, command: str, elapsed: float, load: tuple[float, float]) -> str:
    """The table as Markdown, under a header naming the command, the versions, the machine and its load."""
    header = ["measure", "poolpilot", "baseline", "result", "target", "met"]
    rows = [[r.measure, r.poolpilot, r.baseline, r.result, r.target, r.met] for r in report.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [
        f"`{command}`: mcp {version('mcp')}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {load[0]:.2f} at start / {load[1]:.2f} at end, {elapsed:.0f} s",
        "",
        line(header),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(r) for r in rows),
    ]
    if report.notes:
        out += ["", *report.notes]
    if report.failures:
        out += ["", *(f"FAILED: {f}" for f in report.failures)]
    return "\n".join(out)
