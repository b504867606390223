"""Behaviour of the ``priority`` strategy: priority then config order, no state, properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_priority import select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, SelectionContext

STRATEGY = "priority"

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
    assert order(STRATEGY, [cand("a", priority=7)], ctx()) == ["a"]


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
        assert order(STRATEGY, cands, context) == ["z", "a1", "a2", "b1", "b2", "c"]
    assert context.state == {}


def test_next_only_when_earlier_are_unavailable() -> None:
    primary, secondary, tertiary = (
        cand("primary"),
        cand("secondary", priority=1),
        cand("tertiary", priority=2),
    )
    # the kernel removes unavailable candidates before asking the strategy
    assert order(STRATEGY, [tertiary, secondary, primary], ctx())[0] == "primary"
    assert order(STRATEGY, [tertiary, secondary], ctx())[0] == "secondary"
    assert order(STRATEGY, [tertiary], ctx())[0] == "tertiary"


def test_ignores_load_latency_price_and_slow_start() -> None:
    cands = [
        cand("first", in_flight=100, latency_ewma=9.0, weight_factor=0.1, price=Price(input=99)),
        cand("second", latency_ewma=0.1, price=Price()),
    ]

    class NoRandom:
        def random(self) -> float:
            raise AssertionError("priority drew a random number")

    context = SelectionContext(alias="a", now=0.0, random=NoRandom(), state={})
    assert order(STRATEGY, cands, context) == ["first", "second"]


def test_pair_stats_untouched() -> None:
    stable, recovering, _ = recovering_pair(12.0)
    cands = [cand("recovering", stats=recovering), cand("stable", stats=stable)]
    assert order(STRATEGY, cands, ctx()) == ["recovering", "stable"]


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
