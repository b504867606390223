"""Micro-benchmarks: one ``select_provider`` call per strategy, as the kernel makes it.

Each strategy orders 10 and 1,000 candidates built on the kernel's own ``PairStats`` (a
``HealthRegistry`` with a fixed clock): keys shared by several deployments, rpm/tpm limits, 60-s
counters with traffic, provider rate-limit figures, latency EWMAs, prices and two priority tiers.
The call goes through a real plugin manager (``host.hook.select_provider``), so pluggy's dispatch
over every installed strategy plugin is included. The per-alias state persists across rounds, as
it does in the gateway. Run with ``make bench``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm.types import Candidate, Price, Provider, RateLimits
from truckllm_testing.selection import HealthHarness, candidate, key_ref, selection_context

STRATEGIES = ["first", "weighted", "round-robin", "least-latency", "least-busy", "usage", "cost", "priority"]
NOW = 1_000.0

# candidates = providers x keys per provider x deployments per provider
SHAPES = {10: (1, 5, 2), 1000: (10, 10, 10)}


def build_candidates(size: int) -> list[Candidate]:
    """``size`` candidates with live-looking statistics."""
    providers, keys, deployments = SHAPES[size]
    rng = random.Random(size)
    health = HealthHarness(now=NOW)
    out: list[Candidate] = []
    for p in range(providers):
        provider = Provider(name=f"prov{p}", type="openai", base_url=f"https://prov{p}.test/v1")
        refs = [
            key_ref(
                f"key{k}",
                provider=provider.name,
                weight=rng.choice([1.0, 2.0]),
                rpm=rng.choice([None, 500, 5000]),
                tpm=rng.choice([None, 200_000, 2_000_000]),
            )
            for k in range(keys)
        ]
        for ref in refs:
            state = health.registry.key(provider.name, ref.name)
            for second in range(60):
                state.requests.add(NOW - second, rng.randrange(5))
                state.tokens.add(NOW - second, rng.randrange(5000))
            if rng.random() < 0.5:
                state.limits = RateLimits(
                    remaining_requests=rng.randrange(5000), remaining_tokens=rng.randrange(10**6)
                )
                state.limits_at = NOW
        for d in range(deployments):
            index = p * deployments + d
            weight = rng.choice([1.0, 3.0])
            price = Price(input=rng.choice([0.15, 2.5, 3.0]), output=rng.choice([0.6, 10.0, 15.0]))
            for ref in refs:
                stats = health.pair(ref.name, alias="bench", provider=provider.name, model=f"model-{d}")
                stats.in_flight = rng.randrange(4)
                if rng.random() < 0.9:
                    stats.observe(rng.uniform(0.2, 3.0), rng.uniform(0.05, 0.8))
                out.append(
                    candidate(
                        f"bench#{index}:{provider.name}/{ref.name}",
                        weight,
                        key=ref.name,
                        key_weight=ref.weight,
                        priority=0 if index % 4 else 1,
                        price=price,
                        rpm=ref.rpm,
                        tpm=ref.tpm,
                        index=index,
                        model=f"model-{d}",
                        alias="bench",
                        provider=provider,
                        stats=stats,
                    )
                )
    assert len(out) == size
    return out


@pytest.fixture(scope="module")
def host() -> PluginHost:
    """The plugin manager with every installed plugin, as the gateway builds it."""
    return make_plugin_manager()


@pytest.mark.parametrize("size", sorted(SHAPES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_provider(benchmark: Any, host: PluginHost, strategy: str, size: int) -> None:
    if strategy not in host.strategies:
        pytest.skip(f"no installed plugin offers strategy {strategy!r}")
    candidates = build_candidates(size)
    context = selection_context(0, alias="bench", now=NOW, estimated_tokens=1200, stream=False)
    select = host.hook.select_provider

    ordered = benchmark(select, strategy=strategy, candidates=candidates, context=context)
    assert ordered is not None and len(ordered) == size
