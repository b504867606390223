"""Behaviour of the ``weighted`` strategy: SWRR sequences, distribution, tiers, slow start, state."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

from truckllm_strategy_weighted import effective_weight, select_provider

from truckllm.types import Candidate, SelectionContext
from truckllm_testing.selection import (
    FakeStats,
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
    selection_context,
)
from truckllm_testing.selection import candidate as cand

STRATEGY = "weighted"
SELECT = Selector(select_provider, STRATEGY)


def ctx(state: dict[str, Any] | None = None) -> SelectionContext:
    """A selection context with its own state (``weighted`` uses no randomness)."""
    return selection_context(state=state)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("round-robin", [cand("a")], ctx()) is None
    assert select_provider("Weighted", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    only = cand("a")
    context = ctx()
    for _ in range(3):
        assert select_provider(STRATEGY, [only], context) == [only]


def test_swrr_exact_sequence_5_1_1() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1)]
    assert SELECT.picks(cands, 14) == list("aabacaa" * 2)


def test_swrr_sequence_is_smooth_for_2_1() -> None:
    assert SELECT.picks([cand("a", 2), cand("b", 1)], 6) == list("abaaba")


def test_distribution_3_to_1() -> None:
    counts = Counter(SELECT.picks([cand("a", 3), cand("b", 1)], 4000))
    assert abs(counts["a"] / 4000 - 0.75) <= 0.02
    assert counts["a"] == 3000  # SWRR is exact over whole cycles


def test_key_weight_multiplies_deployment_weight() -> None:
    cands = [cand("a", 1, key_weight=2), cand("b", 2, key_weight=0.5), cand("c", 1)]
    counts = Counter(SELECT.picks(cands, 4000))
    assert abs(counts["a"] / 4000 - 0.5) <= 0.02
    assert abs(counts["b"] / 4000 - 0.25) <= 0.02


def test_rest_of_tier_follows_in_descending_current_weight() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1)]
    context = ctx()
    # after round 1 the current weights are a=-2, b=1, c=1: the pick, then b, c (config order on a tie)
    assert SELECT.order(cands, context) == ["a", "b", "c"]
    assert context.state["current_weights"] == {"a": -2.0, "b": 1.0, "c": 1.0}
    third = (SELECT.order(cands, context), SELECT.order(cands, context))[1]
    # round 3 picks b; the current weights are then a=1, b=-4, c=3
    assert third == ["b", "c", "a"]


def test_priority_tiers_come_in_order() -> None:
    cands = [
        cand("low1", 1, priority=1),
        cand("top1", 1, priority=0),
        cand("neg", 1, priority=-1),
        cand("low2", 3, priority=1),
        cand("top2", 1, priority=0),
    ]
    context = ctx()
    for _ in range(20):
        ordered = SELECT.select(cands, context)
        assert [c.deployment.priority for c in ordered] == [-1, 0, 0, 1, 1]


def test_lower_tier_is_balanced_by_its_own_weights() -> None:
    cands = [cand("top", 1, priority=0), cand("x", 3, priority=1), cand("y", 1, priority=1)]
    context = ctx()
    seconds = Counter(SELECT.order(cands, context)[1] for _ in range(4000))
    # failover traffic spreads 3:1 too, not always to the same lower-tier candidate
    assert abs(seconds["x"] / 4000 - 0.75) <= 0.02
    # and when the top tier is unavailable (removed by the kernel) the lower tier serves 3:1
    counts = Counter(SELECT.picks(cands[1:], 4000, context))
    assert abs(counts["x"] / 4000 - 0.75) <= 0.02


def test_zero_weight_comes_last_and_only_then() -> None:
    cands = [cand("zero", 0), cand("low", 1, priority=5), cand("a", 1), cand("b", 2)]
    context = ctx()
    for _ in range(30):
        assert SELECT.order(cands, context)[2:] == ["low", "zero"]
    assert "zero" not in context.state["current_weights"]
    # when nothing else is usable, the drained candidates are still returned, tier by tier
    drained = [cand("z2", 0, priority=1), cand("z1", 0, key_weight=3)]
    assert SELECT.order(drained, context) == ["z1", "z2"]


def test_non_finite_or_negative_weights_count_as_zero() -> None:
    for weight in (float("nan"), float("inf"), -1.0):
        assert effective_weight(cand("a", weight)) == 0.0
    assert effective_weight(cand("a", 2, key_weight=3, stats=FakeStats(weight_factor=0.5))) == 3.0


def test_slow_start_weight_factor_is_honoured_with_real_pair_stats() -> None:
    stable, recovering, health = recovering_pair(12.0)  # 2 s after the ejection ended: 10% of its weight
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    context = ctx()

    assert recovering.weight_factor == 0.1
    counts = Counter(SELECT.picks(cands, 1100, context))
    assert abs(counts["recovering"] / 1100 - 1 / 11) <= 0.01

    health.now = 25.0  # half way through the 30 s slow start: 50%
    assert recovering.weight_factor == 0.5
    counts = Counter(SELECT.picks(cands, 3000, context))
    assert abs(counts["recovering"] / 3000 - 1 / 3) <= 0.02

    health.now = 41.0  # fully recovered
    counts = Counter(SELECT.picks(cands, 1000, context))
    assert counts["recovering"] == 500


def test_candidates_coming_and_going_keep_proportions() -> None:
    a, b, c = cand("a", 2), cand("b", 1), cand("c", 1)
    context = ctx()
    counts: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(8000):
        usable = [x for x in (a, b, c) if x.id != "c" or rng.random() < 0.5]  # c flaps in and out
        counts[SELECT.order(usable, context)[0]] += 1
    # a:b stays 2:1 whatever c does
    assert abs(counts["a"] / (counts["a"] + counts["b"]) - 2 / 3) <= 0.02


def test_state_of_vanished_candidates_is_pruned() -> None:
    context = ctx()
    for generation in range(200):
        SELECT.select([cand(f"g{generation}-{i}") for i in range(3)], context)
    assert len(context.state["current_weights"]) <= 2 * 3 + 16 + 3


def test_same_state_same_answer() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1, priority=1)]
    context = ctx()
    SELECT.picks(cands, 5, context)
    twin = ctx(copy.deepcopy(context.state))
    assert select_provider(STRATEGY, cands, context) == select_provider(STRATEGY, cands, twin)


def _live_then_drained(ordered: list[Candidate], usable: list[Candidate]) -> None:
    """Candidates with a positive effective weight, in tier order, then the drained ones."""
    live = [c for c in ordered if effective_weight(c) > 0]
    drained = [c for c in ordered if effective_weight(c) == 0]
    assert ordered == live + drained
    priorities = [c.deployment.priority for c in live]
    assert priorities == sorted(priorities)


def test_result_is_always_a_permutation() -> None:
    check_selection_property(select_provider, STRATEGY, tiered=False, check=_live_then_drained)
