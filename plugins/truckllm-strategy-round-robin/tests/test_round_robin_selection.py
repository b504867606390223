"""Behaviour of the ``round-robin`` strategy: rotation, tiers, churn, slow start, properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_round_robin import select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, SelectionContext

STRATEGY = "round-robin"

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
    *,
    priority: int = 0,
    weight: float = 1.0,
    price: Price | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    stats: Any = None,
    **fields: Any,
) -> Candidate:
    """A candidate named ``ident`` (also its key's name); ``fields`` set ``FakeStats`` fields."""
    return Candidate(
        id=ident,
        deployment=Deployment(
            alias="a", index=0, provider="p", model="m", weight=weight, priority=priority, price=price
        ),
        provider=PROVIDER,
        key=KeyRef(provider="p", name=ident, rpm=rpm, tpm=tpm),
        stats=stats if stats is not None else FakeStats(**fields),
    )


def ctx(seed: int = 0, **fields: Any) -> SelectionContext:
    """A selection context with a seeded random source and empty state."""
    return SelectionContext(alias="a", now=0.0, random=random.Random(seed), state={}, **fields)


def order(strategy: str, cands: list[Candidate], context: SelectionContext) -> list[str]:
    """The ids ``select_provider`` returns, checked to be a permutation of ``cands``."""
    ordered = select_provider(strategy, cands, context)
    assert ordered is not None
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cands)
    return [c.id for c in ordered]


def leaders(strategy: str, cands: list[Candidate], n: int, context: SelectionContext) -> Counter[str]:
    """How often each candidate comes first over ``n`` selections sharing ``context``."""
    return Counter(order(strategy, cands, context)[0] for _ in range(n))


def recovering_pair(factor_at: float) -> tuple[Any, Any, list[float]]:
    """Real ``PairStats``: a stable key and one ejected at t=0 for 10 s; the clock is settable.

    Set the clock to ``10 + 30 * f`` for a slow-start factor ``f`` (minimum 0.1).
    """
    now = [0.0]
    health = HealthRegistry(clock=lambda: now[0])
    stable = health.pair("a", "p", "m", "stable")
    recovering = health.pair("a", "p", "m", "recovering")
    health.record_failure(recovering.key_state, CooldownConfig(failures=1, duration=Duration(10)), 0.0)
    now[0] = factor_at
    return stable, recovering, now


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("weighted", [cand("a")], ctx()) is None


def test_single_candidate() -> None:
    context = ctx()
    for _ in range(3):
        assert order(STRATEGY, [cand("a")], context) == ["a"]


def test_rotation_order() -> None:
    cands = [cand("a"), cand("b"), cand("c")]
    context = ctx()
    assert [order(STRATEGY, cands, context) for _ in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_equal_shares() -> None:
    cands = [cand(x) for x in "abcd"]
    assert leaders(STRATEGY, cands, 4000, ctx()) == {x: 1000 for x in "abcd"}


def test_tiers_rotate_separately() -> None:
    cands = [cand("x", priority=1), cand("a"), cand("y", priority=1), cand("b"), cand("z", priority=1)]
    context = ctx()
    assert [order(STRATEGY, cands, context) for _ in range(3)] == [
        ["a", "b", "x", "y", "z"],
        ["b", "a", "y", "z", "x"],
        ["a", "b", "z", "x", "y"],
    ]


def test_candidate_leaving_and_returning() -> None:
    a, b, c = cand("a"), cand("b"), cand("c")
    context = ctx()
    assert order(STRATEGY, [a, b, c], context)[0] == "a"
    # c cools down for a while: a and b alternate
    assert [order(STRATEGY, [a, b], context)[0] for _ in range(4)] == ["b", "a", "b", "a"]
    # c is back: its last turn is the oldest, so it leads once, then the rotation goes on
    assert [order(STRATEGY, [a, b, c], context)[0] for _ in range(4)] == ["c", "b", "a", "c"]


def test_new_candidate_after_reload_leads_once() -> None:
    context = ctx()
    cands = [cand("a"), cand("b")]
    leaders(STRATEGY, cands, 5, context)
    cands.append(cand("new"))
    assert [order(STRATEGY, cands, context)[0] for _ in range(3)] == ["new", "b", "a"]


def test_state_survives_and_is_pruned() -> None:
    context = ctx()
    for generation in range(100):
        order(STRATEGY, [cand(f"g{generation}-{i}") for i in range(3)], context)
    assert len(context.state["last_turn"]) <= 2 * 3 + 16 + 3


def test_slow_start_counts_as_a_fraction_of_a_turn() -> None:
    stable, recovering, now = recovering_pair(12.0)
    assert recovering.weight_factor == 0.1
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    counts = leaders(STRATEGY, cands, 4000, ctx(3))
    # it takes a turn with probability 0.1: a weight of 0.1 against 1
    assert abs(counts["recovering"] / 4000 - 0.1 / 1.1) <= 0.015
    now[0] = 41.0  # recovered: plain alternation again
    counts = leaders(STRATEGY, cands, 1000, ctx(3))
    assert counts["recovering"] == 500


def test_slow_start_among_four() -> None:
    cands = [cand(x) for x in "abc"] + [cand("r", weight_factor=0.5)]
    counts = leaders(STRATEGY, cands, 7000, ctx(5))
    assert abs(counts["r"] / 7000 - 0.5 / 3.5) <= 0.015


def test_without_slow_start_no_randomness_is_used() -> None:
    class NoRandom:
        def random(self) -> float:
            raise AssertionError("round-robin drew a random number")

    context = SelectionContext(alias="a", now=0.0, random=NoRandom(), state={})
    assert order(STRATEGY, [cand("a"), cand("b")], context) == ["a", "b"]


stats_strategy = st.builds(
    FakeStats,
    in_flight=st.integers(min_value=0, max_value=5),
    key_in_flight=st.integers(min_value=0, max_value=8),
    latency_ewma=st.none() | st.floats(min_value=0.01, max_value=30),
    ttft_ewma=st.none() | st.floats(min_value=0.01, max_value=30),
    requests_last_minute=st.integers(min_value=0, max_value=600),
    tokens_last_minute=st.integers(min_value=0, max_value=100_000),
    remaining_requests=st.none() | st.integers(min_value=0, max_value=1000),
    remaining_tokens=st.none() | st.integers(min_value=0, max_value=200_000),
    weight_factor=st.sampled_from([1.0, 1.0, 1.0, 0.5, 0.1]),
)
candidate_specs = st.lists(
    st.tuples(
        st.integers(min_value=-1, max_value=2),  # priority
        st.none()
        | st.builds(
            Price, input=st.sampled_from([0.0, 0.15, 2.5, 3.0]), output=st.sampled_from([0.0, 0.6, 10.0])
        ),
        st.none() | st.integers(min_value=1, max_value=500),  # rpm
        st.none() | st.integers(min_value=1, max_value=100_000),  # tpm
        stats_strategy,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    specs=candidate_specs,
    seed=st.integers(min_value=0, max_value=2**32),
    stream=st.booleans(),
    estimated_tokens=st.integers(min_value=0, max_value=50_000),
    data=st.data(),
)
def test_result_is_always_a_permutation_in_tier_order(
    specs: list[tuple[int, Price | None, int | None, int | None, FakeStats]],
    seed: int,
    stream: bool,
    estimated_tokens: int,
    data: st.DataObject,
) -> None:
    cands = [
        cand(f"c{i}", priority=p, price=price, rpm=rpm, tpm=tpm, stats=stats)
        for i, (p, price, rpm, tpm, stats) in enumerate(specs)
    ]
    context = ctx(seed, stream=stream, estimated_tokens=estimated_tokens)
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        usable = data.draw(st.lists(st.sampled_from(cands), min_size=1, unique_by=lambda c: c.id))
        ordered = select_provider(STRATEGY, usable, context)
        assert ordered is not None
        assert len(ordered) == len(usable)
        assert {c.id for c in ordered} == {c.id for c in usable}
        priorities = [c.deployment.priority for c in ordered]
        assert priorities == sorted(priorities)
