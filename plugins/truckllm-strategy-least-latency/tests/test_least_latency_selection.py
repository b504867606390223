"""Behaviour of the ``least-latency`` strategy: ranking, exploration, streams, tiers, properties."""

from __future__ import annotations

from collections import Counter

from truckllm_strategy_least_latency import EXPLORE_PROBABILITY, latency_of, select_provider

from truckllm_testing.selection import (
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "least-latency"
SELECT = Selector(select_provider, STRATEGY)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("least-busy", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    context = ctx()
    for _ in range(50):
        assert SELECT.order([cand("a", latency_ewma=1.0)], context) == ["a"]


def test_fastest_first_then_by_latency() -> None:
    cands = [cand("mid", latency_ewma=0.5), cand("fast", latency_ewma=0.2), cand("slow", latency_ewma=0.9)]
    context = ctx(1)
    results = [SELECT.order(cands, context) for _ in range(4000)]
    plain = [r for r in results if r == ["fast", "mid", "slow"]]
    assert abs(len(plain) / 4000 - (1 - EXPLORE_PROBABILITY)) <= 0.01
    # an exploration moves one candidate to the front and leaves the others in latency order
    assert {tuple(r) for r in results} == {
        ("fast", "mid", "slow"),
        ("mid", "fast", "slow"),
        ("slow", "fast", "mid"),
    }


def test_exploration_rate() -> None:
    cands = [cand(f"c{i}", latency_ewma=0.1 * (i + 1)) for i in range(4)]
    counts = SELECT.leaders(cands, 20000, ctx(2))
    assert abs(1 - counts["c0"] / 20000 - EXPLORE_PROBABILITY) <= 0.006
    for other in ("c1", "c2", "c3"):  # spread evenly over the others
        assert abs(counts[other] / 20000 - EXPLORE_PROBABILITY / 3) <= 0.005


def test_unmeasured_candidates_come_first_fewest_in_flight_first() -> None:
    cands = [
        cand("fast", latency_ewma=0.01),
        cand("new-busy", in_flight=2),
        cand("new-idle", in_flight=0),
    ]
    context = ctx(3)
    counts = Counter(tuple(SELECT.order(cands, context)) for _ in range(2000))
    assert counts[("new-idle", "new-busy", "fast")] / 2000 >= 0.93


def test_ties_are_broken_at_random() -> None:
    cands = [cand("a", latency_ewma=0.3), cand("b", latency_ewma=0.3), cand("c", latency_ewma=0.3)]
    counts = SELECT.leaders(cands, 6000, ctx(4))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03
    unmeasured = SELECT.leaders([cand("x"), cand("y")], 4000, ctx(5))
    assert abs(unmeasured["x"] / 4000 - 0.5) <= 0.03


def test_streams_rank_by_time_to_first_token() -> None:
    quick_start = cand("quick-start", latency_ewma=5.0, ttft_ewma=0.2)
    quick_finish = cand("quick-finish", latency_ewma=1.0, ttft_ewma=0.8)
    only_latency = cand("only-latency", latency_ewma=0.5)
    assert latency_of(quick_start, stream=True) == 0.2
    assert latency_of(quick_start, stream=False) == 5.0
    assert latency_of(only_latency, stream=True) == 0.5
    assert latency_of(cand("none"), stream=True) is None
    cands = [quick_start, quick_finish, only_latency]
    streams = SELECT.leaders(cands, 2000, ctx(6, stream=True))
    whole = SELECT.leaders(cands, 2000, ctx(6, stream=False))
    assert streams["quick-start"] / 2000 >= 0.93
    assert whole["only-latency"] / 2000 >= 0.93


def test_priority_tiers_and_no_exploration_across_them() -> None:
    cands = [
        cand("backup-fast", priority=1, latency_ewma=0.01),
        cand("top", latency_ewma=3.0),
        cand("backup-slow", priority=1, latency_ewma=0.5),
    ]
    context = ctx(7)
    for _ in range(2000):
        ranked = SELECT.order(cands, context)
        assert ranked[0] == "top"
        assert ranked[1:] == ["backup-fast", "backup-slow"]  # lower tiers are not explored


def test_slow_start_limits_the_fastest_recovering_key() -> None:
    stable, recovering, health = recovering_pair(12.0)
    stable.latency_ewma = 1.0
    recovering.latency_ewma = 0.1
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    counts = SELECT.leaders(cands, 4000, ctx(8))
    assert 0.06 <= counts["recovering"] / 4000 <= 0.14  # about its factor, 0.1
    health.now = 41.0
    counts = SELECT.leaders(cands, 4000, ctx(8))
    assert abs(counts["recovering"] / 4000 - (1 - EXPLORE_PROBABILITY)) <= 0.01


def test_same_seed_same_answer() -> None:
    cands = [cand(f"c{i}", latency_ewma=0.3 if i % 2 else None) for i in range(8)]
    assert [SELECT.order(cands, ctx(9)) for _ in range(5)] == [SELECT.order(cands, ctx(9)) for _ in range(5)]


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
