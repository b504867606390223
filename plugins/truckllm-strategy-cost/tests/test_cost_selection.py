"""Behaviour of the ``cost`` strategy: price order, unknown prices, latency ties, tiers, properties."""

from __future__ import annotations

from truckllm_strategy_cost import estimated_cost, select_provider

from truckllm.types import Price
from truckllm_testing.selection import (
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "cost"
SELECT = Selector(select_provider, STRATEGY)

MINI = Price(input=0.15, output=0.60)
GPT4O = Price(input=2.50, output=10.00)
SONNET = Price(input=3.00, output=15.00)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("priority", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    assert SELECT.order([cand("a")], ctx()) == ["a"]


def test_estimated_cost() -> None:
    assert estimated_cost(None, 10, 10) is None
    assert estimated_cost(GPT4O, 1_000_000, 0) == 2.5
    assert estimated_cost(GPT4O, 1000, 500) == (2.5 * 1000 + 10 * 500) / 1_000_000
    assert estimated_cost(Price(), 1000, 1000) == 0.0


def test_cheapest_first_unpriced_last() -> None:
    cands = [
        cand("sonnet", price=SONNET),
        cand("unpriced"),
        cand("gpt-4o", price=GPT4O),
        cand("mini", price=MINI),
        cand("free", price=Price()),
    ]
    context = ctx(estimated_tokens=3000)
    for _ in range(20):
        assert SELECT.order(cands, context) == ["free", "mini", "gpt-4o", "sonnet", "unpriced"]
    assert SELECT.order(cands, ctx()) == ["free", "mini", "gpt-4o", "sonnet", "unpriced"]


def test_input_plus_output_decides_without_a_split_estimate() -> None:
    cheap_in = cand("cheap-input", price=Price(input=1.0, output=20.0))  # 21 per M of each
    balanced = cand("balanced", price=Price(input=5.0, output=10.0))  # 15
    assert SELECT.order([cheap_in, balanced], ctx(estimated_tokens=1000)) == ["balanced", "cheap-input"]


def test_equal_cost_by_latency_unmeasured_first() -> None:
    cands = [
        cand("slow", price=MINI, latency_ewma=2.0),
        cand("fast", price=MINI, latency_ewma=0.5),
        cand("unmeasured", price=MINI),
        cand("dear-fast", price=GPT4O, latency_ewma=0.1),
    ]
    assert SELECT.order(cands, ctx()) == ["unmeasured", "fast", "slow", "dear-fast"]


def test_unpriced_ties_by_latency_too() -> None:
    cands = [cand("a", latency_ewma=2.0), cand("b", latency_ewma=1.0), cand("c", price=SONNET)]
    assert SELECT.order(cands, ctx()) == ["c", "b", "a"]


def test_exact_ties_at_random() -> None:
    cands = [cand(x, price=MINI, latency_ewma=1.0) for x in "abc"]
    counts = SELECT.leaders(cands, 6000, ctx(1))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03


def test_priority_tiers_before_price() -> None:
    cands = [
        cand("cheap-backup", priority=1, price=MINI),
        cand("dear-top", price=SONNET),
        cand("unpriced-top"),
    ]
    assert SELECT.order(cands, ctx()) == ["dear-top", "unpriced-top", "cheap-backup"]


def test_slow_start_limits_the_cheapest_recovering_key() -> None:
    stable, recovering, health = recovering_pair(12.0)
    cands = [cand("stable", price=GPT4O, stats=stable), cand("recovering", price=MINI, stats=recovering)]
    counts = SELECT.leaders(cands, 4000, ctx(2))
    assert abs(counts["recovering"] / 4000 - 0.1) <= 0.015
    health.now = 41.0
    assert SELECT.leaders(cands, 100, ctx(2))["recovering"] == 100


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
