"""Behaviour of the ``least-busy`` strategy: in-flight ranking, ties, tiers, slow start, properties."""

from __future__ import annotations

from truckllm_strategy_least_busy import select_provider

from truckllm_testing.selection import (
    FakeStats,
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "least-busy"
SELECT = Selector(select_provider, STRATEGY)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("least-latency", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    assert SELECT.order([cand("a", in_flight=9)], ctx()) == ["a"]


def test_fewest_in_flight_first_then_fewest_on_the_key() -> None:
    cands = [
        cand("busy", in_flight=5),
        cand("idle-pair-busy-key", in_flight=0, key_in_flight=4),
        cand("one", in_flight=1),
        cand("idle", in_flight=0, key_in_flight=1),
    ]
    context = ctx()
    for _ in range(50):
        assert SELECT.order(cands, context) == ["idle", "idle-pair-busy-key", "one", "busy"]


def test_ties_are_broken_at_random() -> None:
    cands = [cand(x, in_flight=1, key_in_flight=1) for x in "abcd"] + [cand("e", in_flight=2)]
    counts = SELECT.leaders(cands, 8000, ctx(1))
    for name in "abcd":
        assert abs(counts[name] / 8000 - 0.25) <= 0.02
    assert counts["e"] == 0


def test_load_evens_out_when_requests_are_held() -> None:
    stats = {x: FakeStats() for x in "abc"}
    cands = [cand(x, stats=stats[x]) for x in "abc"]
    context = ctx(2)
    for _ in range(30):  # thirty requests in flight at once, none finished
        first = SELECT.order(cands, context)[0]
        stats[first].in_flight += 1
        stats[first].key_in_flight += 1
    assert [s.in_flight for s in stats.values()] == [10, 10, 10]


def test_priority_tiers_come_first_whatever_the_load() -> None:
    cands = [
        cand("idle-backup", priority=1),
        cand("busy-top", in_flight=50),
        cand("less-busy-backup", priority=1),
    ]
    context = ctx(3)
    for _ in range(100):
        ranked = SELECT.order(cands, context)
        assert ranked[0] == "busy-top"


def test_slow_start_keeps_an_idle_recovering_key_from_being_flooded() -> None:
    stable, recovering, health = recovering_pair(12.0)
    stable.in_flight = 3
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    counts = SELECT.leaders(cands, 4000, ctx(4))
    assert abs(counts["recovering"] / 4000 - 0.1) <= 0.015
    health.now = 41.0
    assert SELECT.leaders(cands, 100, ctx(4))["recovering"] == 100


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
