"""Fault rules: the CLI syntax and how rules fire."""

from __future__ import annotations

import random

import pytest

from poolpilot.server.kernel.sandbox import FaultPlan, parse_fault


def test_parse_fault_reads_every_kind() -> None:
    assert parse_fault("429@digitalocean").status == 429
    latency = parse_fault("latency:50ms")
    assert (latency.kind, latency.delay_s) == ("latency", 0.05)
    rule = parse_fault("applied-500@databases_add_connectionPool%20#3")
    assert (rule.kind, rule.target, rule.rate, rule.times) == ("applied-500", "databases_add_connectionPool", 0.2, 3)
    assert parse_fault("drop").kind == "drop"
    assert parse_fault("timeout@get_job").target == "get_job"


@pytest.mark.parametrize("spec", ["", "999", "explode", "500@", "latency:fast", "200"])
def test_parse_fault_rejects_nonsense_with_the_syntax(spec: str) -> None:
    with pytest.raises(ValueError, match=r"KIND|400-599"):
        parse_fault(spec)


def test_fault_fires_only_for_its_target_and_count() -> None:
    plan = FaultPlan()
    plan.add("500@get_job#2")
    assert plan.pick("taurusdb", "list_proxies") == []
    assert len(plan.pick("taurusdb", "get_job")) == 1
    assert len(plan.pick("taurusdb", "get_job")) == 1
    assert plan.pick("taurusdb", "get_job") == []


def test_fault_rate_is_seeded_and_roughly_honoured() -> None:
    plan = FaultPlan(rng=random.Random(7))
    plan.add("503%20")
    fired = sum(bool(plan.pick("digitalocean", "x")) for _ in range(1000))
    assert 150 < fired < 250
