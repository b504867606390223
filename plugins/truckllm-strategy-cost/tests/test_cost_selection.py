"""Behaviour of the ``cost`` strategy: price order, unknown prices, latency ties, tiers, properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_cost import estimated_cost, select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, SelectionContext

STRATEGY = "cost"

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


MINI = Price(input=0.15, output=0.60)
GPT4O = Price(input=2.50, output=10.00)
SONNET = Price(input=3.00, output=15.00)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("priority", [cand("a")], ctx()) is None


def test_single_candidate() -> None:
    assert order(STRATEGY, [cand("a")], ctx()) == ["a"]


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
        assert order(STRATEGY, cands, context) == ["free", "mini", "gpt-4o", "sonnet", "unpriced"]
    assert order(STRATEGY, cands, ctx()) == ["free", "mini", "gpt-4o", "sonnet", "unpriced"]


def test_input_plus_output_decides_without_a_split_estimate() -> None:
    cheap_in = cand("cheap-input", price=Price(input=1.0, output=20.0))  # 21 per M of each
    balanced = cand("balanced", price=Price(input=5.0, output=10.0))  # 15
    assert order(STRATEGY, [cheap_in, balanced], ctx(estimated_tokens=1000)) == ["balanced", "cheap-input"]


def test_equal_cost_by_latency_unmeasured_first() -> None:
    cands = [
        cand("slow", price=MINI, latency_ewma=2.0),
        cand("fast", price=MINI, latency_ewma=0.5),
        cand("unmeasured", price=MINI),
        cand("dear-fast", price=GPT4O, latency_ewma=0.1),
    ]
    assert order(STRATEGY, cands, ctx()) == ["unmeasured", "fast", "slow", "dear-fast"]


def test_unpriced_ties_by_latency_too() -> None:
    cands = [cand("a", latency_ewma=2.0), cand("b", latency_ewma=1.0), cand("c", price=SONNET)]
    assert order(STRATEGY, cands, ctx()) == ["c", "b", "a"]


def test_exact_ties_at_random() -> None:
    cands = [cand(x, price=MINI, latency_ewma=1.0) for x in "abc"]
    counts = leaders(STRATEGY, cands, 6000, ctx(1))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03


def test_priority_tiers_before_price() -> None:
    cands = [
        cand("cheap-backup", priority=1, price=MINI),
        cand("dear-top", price=SONNET),
        cand("unpriced-top"),
    ]
    assert order(STRATEGY, cands, ctx()) == ["dear-top", "unpriced-top", "cheap-backup"]


def test_slow_start_limits_the_cheapest_recovering_key() -> None:
    stable, recovering, now = recovering_pair(12.0)
    cands = [cand("stable", price=GPT4O, stats=stable), cand("recovering", price=MINI, stats=recovering)]
    counts = leaders(STRATEGY, cands, 4000, ctx(2))
    assert abs(counts["recovering"] / 4000 - 0.1) <= 0.015
    now[0] = 41.0
    assert leaders(STRATEGY, cands, 100, ctx(2))["recovering"] == 100


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
