"""Behaviour of the ``usage`` strategy: headroom fractions, learned limits, unknowns, tiers, properties."""

from __future__ import annotations

from truckllm_strategy_usage import headroom, select_provider

from truckllm.types import RateLimits
from truckllm_testing.selection import (
    FakeStats,
    HealthHarness,
    Selector,
    check_foreign_strategies,
    check_selection_property,
    recovering_pair,
)
from truckllm_testing.selection import candidate as cand
from truckllm_testing.selection import selection_context as ctx

STRATEGY = "usage"
SELECT = Selector(select_provider, STRATEGY)


def test_foreign_strategy_gets_none() -> None:
    assert select_provider("cost", [cand("a")], ctx()) is None
    check_foreign_strategies(select_provider, STRATEGY)


def test_single_candidate() -> None:
    assert SELECT.order([cand("a", rpm=1, requests_last_minute=5)], ctx()) == ["a"]


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
    assert SELECT.order(cands, ctx()) == ["most", "half", "least"]


def test_estimated_tokens_count_against_tpm() -> None:
    small = cand("small-tpm", tpm=1000)
    large = cand("large-tpm-half-used", tpm=10_000, tokens_last_minute=5000)
    assert SELECT.order([small, large], ctx()) == ["small-tpm", "large-tpm-half-used"]
    # a 600-token request leaves the small key 40%, the large one 44%
    assert SELECT.order([small, large], ctx(estimated_tokens=600)) == ["large-tpm-half-used", "small-tpm"]
    # a request that fits nowhere else is last where it does not fit at all
    tiny = cand("tiny", tpm=100)
    assert SELECT.order([tiny, small], ctx(estimated_tokens=600))[-1] == "tiny"


def test_provider_remaining_is_relative_to_the_most_seen() -> None:
    stats = FakeStats(remaining_requests=1000)
    provider_limited = cand("provider-limited", stats=stats)
    configured = cand("configured", rpm=100, requests_last_minute=50)
    context = ctx()
    assert SELECT.order([provider_limited, configured], context)[0] == "provider-limited"  # 1.0
    stats.remaining_requests = 200  # 20% of the 1000 seen
    assert SELECT.order([provider_limited, configured], context) == ["configured", "provider-limited"]
    assert context.state["peak_remaining_requests"] == {"p/provider-limited": 1000}
    stats.remaining_requests = 900  # the window reset
    assert SELECT.order([provider_limited, configured], context)[0] == "provider-limited"


def test_unknown_ranks_as_full_but_behind_known_full() -> None:
    cands = [
        cand("unknown"),
        cand("half", rpm=100, requests_last_minute=50),
        cand("full", rpm=100),
    ]
    context = ctx(1)
    for _ in range(50):
        assert SELECT.order(cands, context) == ["full", "unknown", "half"]


def test_ties_are_broken_at_random() -> None:
    cands = [cand(x, rpm=10, requests_last_minute=5) for x in "abc"]
    counts = SELECT.leaders(cands, 6000, ctx(2))
    for name in "abc":
        assert abs(counts[name] / 6000 - 1 / 3) <= 0.03


def test_load_spreads_by_remaining_fraction() -> None:
    stats = {"big": FakeStats(), "small": FakeStats()}
    cands = [cand("big", rpm=300, stats=stats["big"]), cand("small", rpm=100, stats=stats["small"])]
    context = ctx(3)
    for _ in range(200):
        first = SELECT.order(cands, context)[0]
        stats[first].requests_last_minute += 1
    # both are used in proportion to their limits: 150 and 50
    assert abs(stats["big"].requests_last_minute - 150) <= 1


def test_priority_tiers_first() -> None:
    cands = [cand("roomy-backup", priority=1, rpm=100), cand("tight-top", rpm=100, requests_last_minute=99)]
    assert SELECT.order(cands, ctx()) == ["tight-top", "roomy-backup"]


def test_with_the_kernel_pair_stats() -> None:
    health = HealthHarness(now=100.0)
    busy = health.pair("busy")
    for _ in range(40):
        busy.key_state.requests.add(health.now)
    reported = health.pair("reported")
    health.report_limits(reported, RateLimits(remaining_requests=90, remaining_tokens=5000))
    cands = [cand("busy", rpm=100, stats=busy), cand("reported", stats=reported)]
    context = ctx()
    assert SELECT.order(cands, context) == ["reported", "busy"]  # 1.0 (its first figure) vs 0.6
    health.now = 130.0
    health.report_limits(reported, RateLimits(remaining_requests=45, remaining_tokens=5000))
    assert SELECT.order(cands, context) == ["busy", "reported"]  # 0.6 vs 0.5 of the 90 seen
    health.now = 161.0  # the busy key's window emptied
    assert SELECT.order(cands, context) == ["busy", "reported"]  # 1.0 vs 0.5


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
        cand(f"a#{i}:p/shared", key="shared", index=i, model=f"m{i}", rpm=10, stats=Counting())
        for i in range(5)
    ]
    assert len(SELECT.order(shared, ctx())) == 5
    assert len(reads) == 1


def test_slow_start_limits_a_recovering_key() -> None:
    stable, recovering, _ = recovering_pair(12.0)
    for _ in range(50):
        stable.key_state.requests.add(12.0)
    cands = [cand("stable", rpm=100, stats=stable), cand("recovering", rpm=100, stats=recovering)]
    counts = SELECT.leaders(cands, 4000, ctx(4))
    assert abs(counts["recovering"] / 4000 - 0.1) <= 0.015


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, STRATEGY)
