"""The ``cache_affinity`` lane's own checks: its fake upstream caches prefixes per key like each
provider (automatic for OpenAI and Gemini, at ``cache_control`` breakpoints for Anthropic), and a
small run of the lane shows what the full one measures for each provider API (affinity keeps
caches warm and the load even; a 429'd key's conversations move with no client error)."""

from __future__ import annotations

import asyncio

import pytest

from bench.cache_affinity import PROVIDERS, PrefixCacheUpstream, Workload, run_lane


def test_the_upstream_caches_prefixes_per_key() -> None:
    up = PrefixCacheUpstream()
    first = [{"role": "system", "content": "a b c"}, {"role": "user", "content": "d e"}]
    longer = [*first, {"role": "assistant", "content": "f"}, {"role": "user", "content": "g h i"}]
    assert up.usage("k1", first) == (5, 0)
    assert up.usage("k1", longer) == (9, 5)  # the earlier request is a cached prefix on this key
    assert up.usage("k2", longer) == (9, 0)  # another account has nothing cached
    other_turn = [{"role": "system", "content": "a b c"}, {"role": "user", "content": "x"}]
    assert up.usage("k1", other_turn) == (4, 3)  # the shared system prompt only


def test_the_anthropic_upstream_caches_only_at_breakpoints() -> None:
    up = PrefixCacheUpstream(provider="anthropic")
    unmarked = [("system", "a b c", False), ("user", "d e", False)]
    assert up.count("k1", unmarked, explicit=True) == (5, 0, 0)
    assert up.count("k1", unmarked, explicit=True) == (5, 0, 0)  # nothing was written
    marked = [("system", "a b c", True), ("user", "d e", True)]
    assert up.count("k1", marked, explicit=True) == (5, 0, 5)  # written up to the last breakpoint
    longer = [
        ("system", "a b c", True),
        ("user", "d e", False),
        ("assistant", "f", False),
        ("user", "g", True),
    ]
    assert up.count("k1", longer, explicit=True) == (7, 5, 2)  # read 5, written from there to the end
    assert up.count("k2", longer, explicit=True) == (7, 0, 7)  # another account: all written


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_small_run_of_the_lane(provider: str) -> None:
    work = Workload(sessions=24, turns=4, keys=4)
    result = asyncio.run(run_lane(work, say=lambda _: None, providers=(provider,)))
    prefix = "" if provider == "openai" else provider + " "
    runs = {name.removeprefix(prefix): run for name, run in result["runs"].items()}
    assert set(runs) == {"single", "off", "on", "on+429"}
    assert all(run["provider"] == provider and run["client_errors"] == 0 for run in runs.values())
    assert runs["single"]["cached_ratio"] > 0.5  # the provider's cached-token report reached the client
    assert runs["on"]["cached_ratio"] > runs["off"]["cached_ratio"] + 0.05
    assert runs["on"]["ratio_vs_single"] >= 0.9
    assert runs["on"]["max_share_deviation"] <= 0.25  # 24 conversations over 4 keys: 6 each, give or take
    hit = runs["on+429"]
    assert hit["limited_key_429s"] >= 1 and hit["limited_key_served_after_limit"] == 0
    assert hit["most_429s_one_session"] == 1  # each of its conversations moved within one request
