"""Behaviour of the ``round-robin`` strategy: rotation, tiers, churn, slow start, properties."""

from __future__ import annotations

from truckllm_strategy_round_robin import select_provider

from truckllm_testing.selection import (
    NoRandom,
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "round-robin"
SELECT = Selector(select_provider, STRATEGY)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("weighted", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    context = ctx()
    for _ in range(3):
        assert SELECT.order([cand("a")], context) == ["a"]


def test_rotation_order() -> None:
    cands = [cand("a"), cand("b"), cand("c")]
    context = ctx()
    assert [SELECT.order(cands, context) for _ in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_equal_shares() -> None:
    cands = [cand(x) for x in "abcd"]
    assert SELECT.leaders(cands, 4000, ctx()) == {x: 1000 for x in "abcd"}


def test_tiers_rotate_separately() -> None:
    cands = [cand("x", priority=1), cand("a"), cand("y", priority=1), cand("b"), cand("z", priority=1)]
    context = ctx()
    assert [SELECT.order(cands, context) for _ in range(3)] == [
        ["a", "b", "x", "y", "z"],
        ["b", "a", "y", "z", "x"],
        ["a", "b", "z", "x", "y"],
    ]


def test_candidate_leaving_and_returning() -> None:
    a, b, c = cand("a"), cand("b"), cand("c")
    context = ctx()
    assert SELECT.order([a, b, c], context)[0] == "a"
    # c cools down for a while: a and b alternate
    assert [SELECT.order([a, b], context)[0] for _ in range(4)] == ["b", "a", "b", "a"]
    # c is back: its last turn is the oldest, so it leads once, then the rotation goes on
    assert [SELECT.order([a, b, c], context)[0] for _ in range(4)] == ["c", "b", "a", "c"]


def test_new_candidate_after_reload_leads_once() -> None:
    context = ctx()
    cands = [cand("a"), cand("b")]
    SELECT.leaders(cands, 5, context)
    cands.append(cand("new"))
    assert [SELECT.order(cands, context)[0] for _ in range(3)] == ["new", "b", "a"]


def test_state_survives_and_is_pruned() -> None:
    context = ctx()
    for generation in range(100):
        SELECT.order([cand(f"g{generation}-{i}") for i in range(3)], context)
    assert len(context.state["last_turn"]) <= 2 * 3 + 16 + 3


def test_slow_start_counts_as_a_fraction_of_a_turn() -> None:
    stable, recovering, health = recovering_pair(12.0)
    assert recovering.weight_factor == 0.1
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    counts = SELECT.leaders(cands, 4000, ctx(3))
    # it takes a turn with probability 0.1: a weight of 0.1 against 1
    assert abs(counts["recovering"] / 4000 - 0.1 / 1.1) <= 0.015
    health.now = 41.0  # recovered: plain alternation again
    counts = SELECT.leaders(cands, 1000, ctx(3))
    assert counts["recovering"] == 500


def test_slow_start_among_four() -> None:
    cands = [cand(x) for x in "abc"] + [cand("r", weight_factor=0.5)]
    counts = SELECT.leaders(cands, 7000, ctx(5))
    assert abs(counts["r"] / 7000 - 0.5 / 3.5) <= 0.015


def test_without_slow_start_no_randomness_is_used() -> None:
    context = ctx(rng=NoRandom(STRATEGY))
    assert SELECT.order([cand("a"), cand("b")], context) == ["a", "b"]


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
