"""The metrics on hand-made rankings, where the right answer can be worked out by hand."""

from __future__ import annotations

import pytest

from imgsearch.evaluation.metrics import Judged, precision_at, precision_ceiling, reciprocal_rank, summarise


def test_reciprocal_rank_is_one_over_the_first_relevant_rank() -> None:
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "z", "w"], {"w"}) == 0.25


def test_reciprocal_rank_is_zero_when_nothing_relevant_is_in_the_list() -> None:
    assert reciprocal_rank(["x", "y"], {"a"}) == 0.0
    assert reciprocal_rank([], {"a"}) == 0.0
    assert reciprocal_rank(["x"], set()) == 0.0


def test_precision_at_5_counts_relevant_items_in_the_first_five() -> None:
    ranked = ["a", "x", "b", "y", "c", "d"]  # d is sixth: outside the window
    assert precision_at(ranked, {"a", "b", "c", "d"}) == pytest.approx(3 / 5)
    assert precision_at(ranked, {"z"}) == 0.0
    assert precision_at(["a", "b", "c", "d", "e"], set("abcde")) == 1.0


def test_precision_at_5_counts_empty_places_as_misses() -> None:
    assert precision_at(["a", "b"], {"a", "b"}) == pytest.approx(2 / 5)
    assert precision_at(["a", "b"], {"a", "b"}, k=2) == 1.0
    with pytest.raises(ValueError):
        precision_at(["a"], {"a"}, k=0)


def test_precision_ceiling_is_bounded_by_the_number_of_relevant_items() -> None:
    assert precision_ceiling({"a"}) == pytest.approx(0.2)
    assert precision_ceiling(set("abcdefg")) == 1.0
    assert precision_ceiling(set()) == 0.0


def test_summarise_averages_per_kind_and_over_all() -> None:
    judged = [
        Judged("attribute", ("a", "x"), frozenset({"a"})),  # rr 1, p5 0.2
        Judged("attribute", ("x", "a"), frozenset({"a"})),  # rr 0.5, p5 0.2
        Judged("relation", ("x", "y", "z", "p"), frozenset({"p"})),  # rr 0.25, p5 0.2
        Judged("relation", ("x", "y"), frozenset({"p"})),  # rr 0, p5 0
    ]
    s = summarise(judged)
    assert set(s) == {"attribute", "relation", "all"}
    assert s["attribute"].queries == 2 and s["attribute"].mrr == pytest.approx(0.75)
    assert s["attribute"].p5 == pytest.approx(0.2)
    assert s["relation"].mrr == pytest.approx(0.125) and s["relation"].p5 == pytest.approx(0.1)
    assert s["all"].queries == 4 and s["all"].mrr == pytest.approx((1 + 0.5 + 0.25) / 4)
    assert s["relation"].p5_ceiling == pytest.approx(0.2)
    assert s["all"].as_dict()["mrr"] == s["all"].mrr


def test_summarise_of_nothing_is_empty() -> None:
    assert summarise([]) == {}


def test_summarise_lists_kinds_in_a_fixed_order_with_all_last() -> None:
    judged = [Judged("relation", ("a",), frozenset({"a"})), Judged("attribute", ("a",), frozenset({"a"}))]
    assert list(summarise(judged)) == ["attribute", "relation", "all"]
