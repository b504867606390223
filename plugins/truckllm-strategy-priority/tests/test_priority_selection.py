"""Behaviour of the ``priority`` strategy: priority then config order, no state, properties."""

from __future__ import annotations

from truckllm_strategy_priority import select_provider

from truckllm.types import Price
from truckllm_testing.selection import (
    NoRandom,
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "priority"
SELECT = Selector(select_provider, STRATEGY)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("weighted", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    assert SELECT.order([cand("a", priority=7)], ctx()) == ["a"]


def test_priority_then_config_order() -> None:
    cands = [
        cand("b1", priority=1),
        cand("a1"),
        cand("c", priority=2),
        cand("a2"),
        cand("b2", priority=1),
        cand("z", priority=-1),
    ]
    context = ctx()
    for _ in range(5):
        assert SELECT.order(cands, context) == ["z", "a1", "a2", "b1", "b2", "c"]
    assert context.state == {}


def test_next_only_when_earlier_are_unavailable() -> None:
    primary, secondary, tertiary = (
        cand("primary"),
        cand("secondary", priority=1),
        cand("tertiary", priority=2),
    )
    # the kernel removes unavailable candidates before asking the strategy
    assert SELECT.order([tertiary, secondary, primary], ctx())[0] == "primary"
    assert SELECT.order([tertiary, secondary], ctx())[0] == "secondary"
    assert SELECT.order([tertiary], ctx())[0] == "tertiary"


def test_ignores_load_latency_price_and_slow_start() -> None:
    cands = [
        cand("first", in_flight=100, latency_ewma=9.0, weight_factor=0.1, price=Price(input=99)),
        cand("second", latency_ewma=0.1, price=Price()),
    ]
    context = ctx(rng=NoRandom(STRATEGY))
    assert SELECT.order(cands, context) == ["first", "second"]


def test_pair_stats_untouched() -> None:
    stable, recovering, _ = recovering_pair(12.0)
    cands = [cand("recovering", stats=recovering), cand("stable", stats=stable)]
    assert SELECT.order(cands, ctx()) == ["recovering", "stable"]


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
