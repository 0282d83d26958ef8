"""The connection budget: RAM from the size slug, 25 per GB minus 3, shared by all pools."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolpilot.server.kernel.errors import PoolpilotError
from poolpilot.server.kernel.fleet import Budget, Finding, Overview, OverviewRow, Thresholds
from poolpilot.tools.digitalocean.budget import available, budget, check_budget, largest_fitting_size, ram_gb_from_slug
from poolpilot.tools.digitalocean.fleet import do_budget


@pytest.mark.parametrize(
    ("slug", "ram", "total"),
    [
        ("db-s-1vcpu-1gb", 1, 22),
        ("db-s-1vcpu-2gb", 2, 47),
        ("db-s-2vcpu-4gb", 4, 97),
        ("gd-2vcpu-8gb", 8, 197),
        ("gd-2vcpu-8gb-intel", 8, 197),
        ("so1_5-2vcpu-16gb", 16, 397),
        ("db-intel-4vcpu-32gb", 32, 797),
        ("c-96-intel", None, None),
        ("", None, None),
    ],
)
def test_budget_comes_from_the_ram_in_the_size_slug(slug: str, ram: int | None, total: int | None) -> None:
    assert ram_gb_from_slug(slug) == ram
    assert budget(slug) == total


def test_budget_refusal_names_what_is_left_and_the_largest_size_that_fits() -> None:
    with pytest.raises(PoolpilotError) as caught:
        check_budget(cluster_name="pg-small", size_slug="db-s-1vcpu-1gb", sizes=[], wanted=40)
    info = caught.value.info
    assert info.code == "budget_exceeded" and info.field == "size"
    assert info.text().startswith(
        "budget_exceeded: size 40 exceeds the 22 connections left on pg-small. Next: retry with size <= 22 "
    )


def test_budget_counts_the_resized_pool_as_freed() -> None:
    # Budget 22; the pool being resized holds 12 of the 22 allocated, so it may grow to 12 but not 13.
    check_budget(cluster_name="c", size_slug="db-s-1vcpu-1gb", sizes=[10, 12], wanted=12, freed=12)
    with pytest.raises(PoolpilotError) as caught:
        check_budget(cluster_name="c", size_slug="db-s-1vcpu-1gb", sizes=[10, 12], wanted=13, freed=12)
    assert "the 12 connections left" in caught.value.info.message


def test_unknown_ram_refuses_nothing() -> None:
    check_budget(cluster_name="c", size_slug="c-96-intel", sizes=[500], wanted=10_000)
    assert available(None, 3) is None and largest_fitting_size(None, 3) is None


@given(
    ram=st.integers(min_value=1, max_value=64),
    sizes=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
    wanted=st.integers(min_value=1, max_value=2000),
)
def test_budget_accepts_exactly_what_fits(ram: int, sizes: list[int], wanted: int) -> None:
    slug = f"db-s-2vcpu-{ram}gb"
    fits = sum(sizes) + wanted <= 25 * ram - 3
    try:
        check_budget(cluster_name="c", size_slug=slug, sizes=sizes, wanted=wanted)
    except PoolpilotError as exc:
        assert not fits
        left = max(25 * ram - 3 - sum(sizes), 0)
        assert f"the {left} connections left" in exc.info.message
    else:
        assert fits


def _full(larger: list[str] | None) -> list[Finding]:
    budget = Budget(max=22, allocated=21, available=1)
    row = OverviewRow(
        provider="digitalocean",
        location="c1",
        pool="web",
        size=21,
        backend="sandbox",
        budget=budget,
        larger_sizes=larger,
    )
    return do_budget(Overview(rows=[row]), Thresholds())


def test_budget_rule_suggests_the_smallest_larger_size_that_fits_else_says_why_not() -> None:
    (resize,) = _full(["db-s-1vcpu-2gb", "db-s-2vcpu-4gb"])
    assert resize.suggested_call is not None and resize.suggested_call.tool == "digitalocean_resize_cluster"
    assert resize.suggested_call.arguments == {"cluster_id": "c1", "size": "db-s-1vcpu-2gb"}
    (none_fits,) = _full([])
    assert none_fits.suggested_call is not None and none_fits.suggested_call.tool == "digitalocean_update_pool"
    assert "No larger size" in none_fits.explanation
    (unknown,) = _full(None)
    assert "could not be read" in unknown.explanation and unknown.suggested_call is not None
    row = OverviewRow(provider="digitalocean", location="c1", pool="web", backend="sandbox", larger_sizes=["x"])
    assert "larger_sizes" not in row.model_dump_json()  # for the rules only, never in a result
