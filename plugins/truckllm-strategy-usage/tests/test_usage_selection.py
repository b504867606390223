"""Behaviour of the ``usage`` strategy: headroom fractions, learned limits, unknowns, tiers, properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_strategy_usage import headroom, select_provider

from truckllm.config.durations import Duration
from truckllm.config.schema import CooldownConfig
from truckllm.health import HealthRegistry
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, RateLimits, SelectionContext

STRATEGY = "usage"

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
    assert select_provider("cost", [cand("a")], ctx()) is None


def test_single_candidate() -> None:
    assert order(STRATEGY, [cand("a", rpm=1, requests_last_minute=5)], ctx()) == ["a"]


def test_headroom_fractions() -> None:
    assert headroom(cand("a")) is None
    assert headroom(cand("a", rpm=100, requests_last_minute=25)) == 0.75
    assert headroom(cand("a", tpm=1000, tokens_last_minute=100), estimated_tokens=400) == 0.5
    # the tightest limit counts
    both = cand("a", rpm=100, requests_last_minute=10, tpm=1000, tokens_last_minute=900)
    assert abs((headroom(both) or 0) - 0.1) < 1e-9
    # provider figures relative to the limit (or the most ever seen), never above 1
    assert headroom(cand("a", remaining_requests=50), peak_requests=200) == 0.25
    assert headroom(cand("a", remaining_requests=300), peak_requests=200) == 1.0
    assert headroom(cand("a", remaining_tokens=1000), estimated_tokens=250, peak_tokens=1000) == 0.75
    assert headroom(cand("a", remaining_tokens=0)) == 0.0
    # a request that does not fit goes negative
    assert (headroom(cand("a", tpm=1000, tokens_last_minute=900), estimated_tokens=300) or 0) < 0


def test_most_headroom_first() -> None:
    cands = [
        cand("half", rpm=100, requests_last_minute=50),
        cand("most", rpm=10, requests_last_minute=2),
        cand("least", rpm=1000, requests_last_minute=900),
    ]
    assert order(STRATEGY, cands, ctx()) == ["most", "half", "least"]


def test_estimated_tokens_count_against_tpm() -> None:
    small = cand("small-tpm", tpm=1000)
    large = cand("large-tpm-half-used", tpm=10_000, tokens_last_minute=5000)
    assert order(STRATEGY, [small, large], ctx()) == ["small-tpm", "large-tpm-half-used"]
    # a 600-token request leaves the small key 40%, the large one 44%
    assert order(STRATEGY, [small, large], ctx(estimated_tokens=600)) == ["large-tpm-half-used", "small-tpm"]
    # a request that fits nowhere else is last where it does not fit at all
    tiny = cand("tiny", tpm=100)
    assert order(STRATEGY, [tiny, small], ctx(estimated_tokens=600))[-1] == "tiny"


def test_provider_remaining_is_relative_to_the_most_seen() -> None:
    stats = FakeStats(remaining_requests=1000)
    provider_limited = cand("provider-limited", stats=stats)
    configured = cand("configured", rpm=100, requests_last_minute=50)
    context = ctx()
    assert order(STRATEGY, [provider_limited, configured], context)[0] == "provider-limited"  # 1.0
    stats.remaining_requests = 200  # 20% of the 1000 seen
    assert order(STRATEGY, [provider_limited, configured], context) == ["configured", "provider-limited"]
    assert context.state["peak_remaining_requests"] == {"p/provider-limited": 1000}
    stats.remaining_requests = 900  # the window reset
    assert order(STRATEGY, [provider_limited, configured], context)[0] == "provider-limited"


def test_unknown_ranks_as_full_but_behind_known_full() -> None:
    cands = [
        cand("unknown"),
        cand("half", rpm=100, requests_last_minute=50),
        cand("full", rpm=100),
    ]
    context = ctx(1)
    for _ in range(50):
        assert order(STRATEGY, cands, context) == ["full", "unknown", "half"]


def test_ties_are_broken_at_random() -> None:
    cands = [cand(x, rpm=10, requests_last_minute=5) for x in "abc"]
    counts = leaders(STRATEGY, cands, 6000, ctx(2))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03


def test_load_spreads_by_remaining_fraction() -> None:
    stats = {"big": FakeStats(), "small": FakeStats()}
    cands = [cand("big", rpm=300, stats=stats["big"]), cand("small", rpm=100, stats=stats["small"])]
    context = ctx(3)
    for _ in range(200):
        first = order(STRATEGY, cands, context)[0]
        stats[first].requests_last_minute += 1
    # both are used in proportion to their limits: 150 and 50
    assert abs(stats["big"].requests_last_minute - 150) <= 1


def test_priority_tiers_first() -> None:
    cands = [cand("roomy-backup", priority=1, rpm=100), cand("tight-top", rpm=100, requests_last_minute=99)]
    assert order(STRATEGY, cands, ctx()) == ["tight-top", "roomy-backup"]


def test_with_the_kernel_pair_stats() -> None:
    now = [100.0]
    health = HealthRegistry(clock=lambda: now[0])
    busy = health.pair("a", "p", "m", "busy")
    for _ in range(40):
        busy.key_state.requests.add(now[0])
    reported = health.pair("a", "p", "m", "reported")
    reported.key_state.limits = RateLimits(remaining_requests=90, remaining_tokens=5000)
    cands = [cand("busy", rpm=100, stats=busy), cand("reported", stats=reported)]
    context = ctx()
    assert order(STRATEGY, cands, context) == ["reported", "busy"]  # 1.0 (its first figure) vs 0.6
    reported.key_state.limits = RateLimits(remaining_requests=45, remaining_tokens=5000)
    assert order(STRATEGY, cands, context) == ["busy", "reported"]  # 0.6 vs 0.5 of the 90 seen
    now[0] = 161.0  # the busy key's window emptied
    assert order(STRATEGY, cands, context) == ["busy", "reported"]  # 1.0 vs 0.5


def test_key_figures_are_read_once_per_key() -> None:
    reads: list[int] = []

    class Counting:
        remaining_requests = None
        remaining_tokens = None
        tokens_last_minute = 0
        weight_factor = 1.0

        @property
        def requests_last_minute(self) -> int:
            reads.append(1)
            return 3

    shared = [
        Candidate(
            id=f"a#{i}:p/shared",
            deployment=Deployment(alias="a", index=i, provider="p", model=f"m{i}"),
            provider=PROVIDER,
            key=KeyRef(provider="p", name="shared", rpm=10),
            stats=Counting(),
        )
        for i in range(5)
    ]
    assert len(order(STRATEGY, shared, ctx())) == 5
    assert len(reads) == 1


def test_slow_start_limits_a_recovering_key() -> None:
    stable, recovering, _ = recovering_pair(12.0)
    for _ in range(50):
        stable.key_state.requests.add(12.0)
    cands = [cand("stable", rpm=100, stats=stable), cand("recovering", rpm=100, stats=recovering)]
    counts = leaders(STRATEGY, cands, 4000, ctx(4))
    assert abs(counts["recovering"] / 4000 - 0.1) <= 0.015


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
