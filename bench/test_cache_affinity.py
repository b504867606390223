"""The ``cache_affinity`` lane's own checks: its fake upstream caches prefixes per key like a
provider, and a small run of the lane shows what the full one measures (affinity keeps caches
warm and the load even; a 429'd key's conversations move with no client error)."""

from __future__ import annotations

import asyncio

from bench.cache_affinity import PrefixCacheUpstream, Workload, run_lane


def test_the_upstream_caches_prefixes_per_key() -> None:
    up = PrefixCacheUpstream()
    first = [{"role": "system", "content": "a b c"}, {"role": "user", "content": "d e"}]
    longer = [*first, {"role": "assistant", "content": "f"}, {"role": "user", "content": "g h i"}]
    assert up.usage("k1", first) == (5, 0)
    assert up.usage("k1", longer) == (9, 5)  # the earlier request is a cached prefix on this key
    assert up.usage("k2", longer) == (9, 0)  # another account has nothing cached
    other_turn = [{"role": "system", "content": "a b c"}, {"role": "user", "content": "x"}]
    assert up.usage("k1", other_turn) == (4, 3)  # the shared system prompt only


def test_a_small_run_of_the_lane() -> None:
    result = asyncio.run(run_lane(Workload(sessions=24, turns=4, keys=4), say=lambda _: None))
    runs = result["runs"]
    assert all(run["client_errors"] == 0 for run in runs.values())
    assert runs["on"]["cached_ratio"] > runs["off"]["cached_ratio"] + 0.05
    assert runs["on"]["ratio_vs_single"] >= 0.9
    assert runs["on"]["max_share_deviation"] <= 0.25  # 24 conversations over 4 keys: 6 each, give or take
    hit = runs["on+429"]
    assert hit["limited_key_429s"] >= 1 and hit["limited_key_served_after_limit"] == 0
