"""Right-sizing advice: every enabled provider's rules (its face's fleet adapter) over the overview rows. Advice
never acts; each finding names the exact tool call that would apply its fix, which the caller then makes through
the normal guard. The rules themselves live with their providers (tools/<provider>/fleet.py); the thresholds are
`Thresholds` (`POOLPILOT_ADVISE_*`, and what each provider's face contributes).
"""

from __future__ import annotations

from collections.abc import Iterable

from poolpilot.server.kernel.fleet import Finding, Overview, Rule, Thresholds

__all__ = ["Thresholds", "advise"]


def advise(overview: Overview, t: Thresholds, rules: Iterable[Rule]) -> list[Finding]:
    order = {"critical": 0, "warning": 1, "info": 2}
    findings = [f for rule in rules for f in rule(overview, t)]
    return sorted(findings, key=lambda f: (order[f.severity], f.provider, f.location, f.pool or ""))
