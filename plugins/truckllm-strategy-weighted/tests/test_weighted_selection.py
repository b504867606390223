"""Behaviour of the ``weighted`` strategy: SWRR sequences, distribution, tiers, slow start, state."""

from __future__ import annotations

import copy
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_weighted import effective_weight, select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Provider, SelectionContext

PROVIDER = Provider(name="p", type="mock", base_url="http://upstream.test")


@dataclass
class FakeStats:
    """A settable stand-in for the kernel's ``PairStats``."""

    in_flight: int = 0
    key_in_flight: int = 0
    latency_ewma: float | None = None
    ttft_ewma: float | None = None
    successes: int = 0
    failures: int = 0
    requests_last_minute: int = 0
    tokens_last_minute: int = 0
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    weight_factor: float = 1.0


def cand(
    ident: str,
    weight: float = 1.0,
    *,
    key_weight: float = 1.0,
    priority: int = 0,
    stats: Any = None,
) -> Candidate:
    """A candidate named ``ident`` (also its key's name)."""
    return Candidate(
        id=ident,
        deployment=Deployment(alias="a", index=0, provider="p", model="m", weight=weight, priority=priority),
        provider=PROVIDER,
        key=KeyRef(provider="p", name=ident, weight=key_weight),
        stats=stats if stats is not None else FakeStats(),
    )


def ctx(state: dict[str, Any] | None = None) -> SelectionContext:
    """A selection context with its own state (``weighted`` uses no randomness)."""
    return SelectionContext(alias="a", now=0.0, random=random.Random(0), state={} if state is None else state)


def picks(cands: list[Candidate], n: int, context: SelectionContext | None = None) -> list[str]:
    """The first candidate's id of ``n`` successive selections sharing one state."""
    context = context or ctx()
    out = []
    for _ in range(n):
        ordered = select_provider("weighted", cands, context)
        assert ordered is not None
        out.append(ordered[0].id)
    return out


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("round-robin", [cand("a")], ctx()) is None
    assert select_provider("Weighted", [cand("a")], ctx()) is None


def test_single_candidate() -> None:
    only = cand("a")
    context = ctx()
    for _ in range(3):
        assert select_provider("weighted", [only], context) == [only]


def test_swrr_exact_sequence_5_1_1() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1)]
    assert picks(cands, 14) == list("aabacaa" * 2)


def test_swrr_sequence_is_smooth_for_2_1() -> None:
    assert picks([cand("a", 2), cand("b", 1)], 6) == list("abaaba")


def test_distribution_3_to_1() -> None:
    counts = Counter(picks([cand("a", 3), cand("b", 1)], 4000))
    assert abs(counts["a"] / 4000 - 0.75) <= 0.02
    assert counts["a"] == 3000  # SWRR is exact over whole cycles


def test_key_weight_multiplies_deployment_weight() -> None:
    cands = [cand("a", 1, key_weight=2), cand("b", 2, key_weight=0.5), cand("c", 1)]
    counts = Counter(picks(cands, 4000))
    assert abs(counts["a"] / 4000 - 0.5) <= 0.02
    assert abs(counts["b"] / 4000 - 0.25) <= 0.02


def test_rest_of_tier_follows_in_descending_current_weight() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1)]
    context = ctx()
    first = select_provider("weighted", cands, context)
    assert first is not None
    # after round 1 the current weights are a=-2, b=1, c=1: the pick, then b, c (config order on a tie)
    assert [c.id for c in first] == ["a", "b", "c"]
    assert context.state["current_weights"] == {"a": -2.0, "b": 1.0, "c": 1.0}
    third = (select_provider("weighted", cands, context), select_provider("weighted", cands, context))[1]
    assert third is not None
    # round 3 picks b; the current weights are then a=1, b=-4, c=3
    assert [c.id for c in third] == ["b", "c", "a"]


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
        ordered = select_provider("weighted", cands, context)
        assert ordered is not None
        assert [c.deployment.priority for c in ordered] == [-1, 0, 0, 1, 1]


def test_lower_tier_is_balanced_by_its_own_weights() -> None:
    cands = [cand("top", 1, priority=0), cand("x", 3, priority=1), cand("y", 1, priority=1)]
    context = ctx()
    seconds: Counter[str] = Counter()
    for _ in range(4000):
        ordered = select_provider("weighted", cands, context)
        assert ordered is not None
        seconds[ordered[1].id] += 1
    # failover traffic spreads 3:1 too, not always to the same lower-tier candidate
    assert abs(seconds["x"] / 4000 - 0.75) <= 0.02
    # and when the top tier is unavailable (removed by the kernel) the lower tier serves 3:1
    counts = Counter(picks(cands[1:], 4000, context))
    assert abs(counts["x"] / 4000 - 0.75) <= 0.02


def test_zero_weight_comes_last_and_only_then() -> None:
    cands = [cand("zero", 0), cand("low", 1, priority=5), cand("a", 1), cand("b", 2)]
    context = ctx()
    for _ in range(30):
        ordered = select_provider("weighted", cands, context)
        assert ordered is not None
        assert [c.id for c in ordered][2:] == ["low", "zero"]
    assert "zero" not in context.state["current_weights"]
    # when nothing else is usable, the drained candidates are still returned, tier by tier
    drained = [cand("z2", 0, priority=1), cand("z1", 0, key_weight=3)]
    ordered = select_provider("weighted", drained, context)
    assert ordered is not None
    assert [c.id for c in ordered] == ["z1", "z2"]


def test_non_finite_or_negative_weights_count_as_zero() -> None:
    for weight in (float("nan"), float("inf"), -1.0):
        assert effective_weight(cand("a", weight)) == 0.0
    assert effective_weight(cand("a", 2, key_weight=3, stats=FakeStats(weight_factor=0.5))) == 3.0


def test_slow_start_weight_factor_is_honoured_with_real_pair_stats() -> None:
    now = [0.0]
    health = HealthRegistry(clock=lambda: now[0])
    stable = health.pair("a", "p", "m", "stable")
    recovering = health.pair("a", "p", "m", "recovering")
    health.record_failure(recovering.key_state, CooldownConfig(failures=1, duration=Duration(10)), now[0])
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    context = ctx()

    now[0] = 12.0  # 2 s after the ejection ended: 10% of its weight
    assert recovering.weight_factor == 0.1
    counts = Counter(picks(cands, 1100, context))
    assert abs(counts["recovering"] / 1100 - 1 / 11) <= 0.01

    now[0] = 25.0  # half way through the 30 s slow start: 50%
    assert recovering.weight_factor == 0.5
    counts = Counter(picks(cands, 3000, context))
    assert abs(counts["recovering"] / 3000 - 1 / 3) <= 0.02

    now[0] = 41.0  # fully recovered
    counts = Counter(picks(cands, 1000, context))
    assert counts["recovering"] == 500


def test_candidates_coming_and_going_keep_proportions() -> None:
    a, b, c = cand("a", 2), cand("b", 1), cand("c", 1)
    context = ctx()
    counts: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(8000):
        usable = [x for x in (a, b, c) if x.id != "c" or rng.random() < 0.5]  # c flaps in and out
        ordered = select_provider("weighted", usable, context)
        assert ordered is not None
        counts[ordered[0].id] += 1
    # a:b stays 2:1 whatever c does
    assert abs(counts["a"] / (counts["a"] + counts["b"]) - 2 / 3) <= 0.02


def test_state_of_vanished_candidates_is_pruned() -> None:
    context = ctx()
    for generation in range(200):
        cands = [cand(f"g{generation}-{i}") for i in range(3)]
        select_provider("weighted", cands, context)
    assert len(context.state["current_weights"]) <= 2 * 3 + 16 + 3


def test_same_state_same_answer() -> None:
    cands = [cand("a", 5), cand("b", 1), cand("c", 1, priority=1)]
    context = ctx()
    picks(cands, 5, context)
    twin = ctx(copy.deepcopy(context.state))
    assert select_provider("weighted", cands, context) == select_provider("weighted", cands, twin)


candidate_specs = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=100, allow_nan=False),  # deployment weight
        st.floats(min_value=0, max_value=10, allow_nan=False),  # key weight
        st.sampled_from([1.0, 1.0, 0.5, 0.1]),  # slow-start factor
        st.integers(min_value=-2, max_value=2),  # priority
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(specs=candidate_specs, rounds=st.integers(min_value=1, max_value=6), data=st.data())
def test_result_is_always_a_permutation(
    specs: list[tuple[float, float, float, int]], rounds: int, data: st.DataObject
) -> None:
    cands = [
        cand(f"c{i}", w, key_weight=kw, priority=p, stats=FakeStats(weight_factor=f))
        for i, (w, kw, f, p) in enumerate(specs)
    ]
    context = ctx()
    for _ in range(rounds):
        usable = data.draw(st.lists(st.sampled_from(cands), min_size=1, unique_by=lambda c: c.id))
        ordered = select_provider("weighted", usable, context)
        assert ordered is not None
        assert len(ordered) == len(usable)
        assert {c.id for c in ordered} == {c.id for c in usable}
        live = [c for c in ordered if effective_weight(c) > 0]
        drained = [c for c in ordered if effective_weight(c) == 0]
        assert ordered == live + drained
        priorities = [c.deployment.priority for c in live]
        assert priorities == sorted(priorities)
