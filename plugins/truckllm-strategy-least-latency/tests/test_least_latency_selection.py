"""Behaviour of the ``least-latency`` strategy: ranking, exploration, streams, tiers, properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_least_latency import EXPLORE_PROBABILITY, latency_of, select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, SelectionContext

STRATEGY = "least-latency"

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
    assert select_provider("least-busy", [cand("a")], ctx()) is None


def test_single_candidate() -> None:
    context = ctx()
    for _ in range(50):
        assert order(STRATEGY, [cand("a", latency_ewma=1.0)], context) == ["a"]


def test_fastest_first_then_by_latency() -> None:
    cands = [cand("mid", latency_ewma=0.5), cand("fast", latency_ewma=0.2), cand("slow", latency_ewma=0.9)]
    context = ctx(1)
    results = [order(STRATEGY, cands, context) for _ in range(4000)]
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
    counts = leaders(STRATEGY, cands, 20000, ctx(2))
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
    counts = Counter(tuple(order(STRATEGY, cands, context)) for _ in range(2000))
    assert counts[("new-idle", "new-busy", "fast")] / 2000 >= 0.93


def test_ties_are_broken_at_random() -> None:
    cands = [cand("a", latency_ewma=0.3), cand("b", latency_ewma=0.3), cand("c", latency_ewma=0.3)]
    counts = leaders(STRATEGY, cands, 6000, ctx(4))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03
    unmeasured = leaders(STRATEGY, [cand("x"), cand("y")], 4000, ctx(5))
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
    streams = leaders(STRATEGY, cands, 2000, ctx(6, stream=True))
    whole = leaders(STRATEGY, cands, 2000, ctx(6, stream=False))
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
        ranked = order(STRATEGY, cands, context)
        assert ranked[0] == "top"
        assert ranked[1:] == ["backup-fast", "backup-slow"]  # lower tiers are not explored


def test_slow_start_limits_the_fastest_recovering_key() -> None:
    stable, recovering, now = recovering_pair(12.0)
    stable.latency_ewma = 1.0
    recovering.latency_ewma = 0.1
    cands = [cand("stable", stats=stable), cand("recovering", stats=recovering)]
    counts = leaders(STRATEGY, cands, 4000, ctx(8))
    assert 0.06 <= counts["recovering"] / 4000 <= 0.14  # about its factor, 0.1
    now[0] = 41.0
    counts = leaders(STRATEGY, cands, 4000, ctx(8))
    assert abs(counts["recovering"] / 4000 - (1 - EXPLORE_PROBABILITY)) <= 0.01


def test_same_seed_same_answer() -> None:
    cands = [cand(f"c{i}", latency_ewma=0.3 if i % 2 else None) for i in range(8)]
    assert [order(STRATEGY, cands, ctx(9)) for _ in range(5)] == [
        order(STRATEGY, cands, ctx(9)) for _ in range(5)
    ]


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
