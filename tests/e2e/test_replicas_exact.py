"""Four gateway replicas behind nginx on one Redis Cluster hold one truth (issue 21, point 2).

The same set-up and checks as the ``replicas`` benchmark lane (:mod:`bench.replicas_lane`), at a
low rate (200 req/s for 4 s, plus a burst on the rate-limited key): ``truckllm serve`` × 4, one
worker each, the Redis store in cluster mode on a 6-node cluster of the test's own, nginx round
robin in front, the lane's counting fake upstream. Nothing here is timed: every assertion is a
count, except the cooldown window, which is measured against the Redis round trip of the same run.
Skipped with the reason when ``redis-server``, ``redis-cli`` or nginx is not installed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.replicas_lane import Options, measure, missing_tools

OPTIONS = Options(rate=200, seconds=4, rpm=20, burst=60, burst_window=0.5, budget=30, flush_interval_ms=200)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    workdir: Path = tmp_path_factory.mktemp("replicas")
    return asyncio.run(measure(OPTIONS, workdir, say=lambda _: None))


def test_every_replica_serves_and_nothing_fails(run: dict[str, Any]) -> None:
    assert run["errors"] == 0 and run["unfinished"] == 0
    assert run["bulk_statuses"] == {"200": run["bulk_statuses"].get("200", 0)}
    hits = run["per_replica_upstream_hits"]
    assert len(hits) == 4 and min(hits.values()) > 0.15 * sum(hits.values())  # round robin spread


def test_rpm_is_exact_to_the_request_across_replicas(run: dict[str, Any]) -> None:
    rpm = run["checks"]["rpm"]
    # 60 requests within 0.5 s, less than one GCRA interval (60 / 20 = 3 s): no refill can fall in
    assert rpm["sent"] == OPTIONS.burst
    assert rpm["statuses"] == {"200": OPTIONS.rpm, "429": OPTIONS.burst - OPTIONS.rpm}
    assert rpm["ok"]


def test_budget_is_never_overspent_and_refusals_start_at_it(run: dict[str, Any]) -> None:
    budget = run["checks"]["budget"]
    assert budget["sent"] > OPTIONS.budget  # the run offers more than the budget holds
    # each request reserves and costs exactly $1: exactly `budget` are admitted, not one fewer
    assert budget["admitted"] == OPTIONS.budget
    assert budget["statuses"] == {"200": OPTIONS.budget, "429": budget["sent"] - OPTIONS.budget}
    assert budget["usage_cost_usd"] == float(OPTIONS.budget)
    assert budget["ok"]


def test_a_429_cools_the_key_on_every_replica_within_a_store_round_trip(run: dict[str, Any]) -> None:
    cooldown = run["checks"]["cooldown"]
    assert cooldown["first_429_after_poison_ms"] is not None  # the key was hit after poisoning
    assert cooldown["hot_state_per_replica"] == ["cooldown"] * 4
    window = cooldown["store_rtt_ms"]["p99"] + cooldown["slack_ms"]
    assert cooldown["last_hit_ms"] <= window, cooldown
    assert cooldown["ok"]


def test_usage_is_identical_from_every_replica_and_equals_the_upstreams_count(run: dict[str, Any]) -> None:
    usage = run["checks"]["usage"]
    assert usage["identical"]
    assert usage["usage_successes"] == usage["upstream_200"] == usage["client_200"]
    rows = usage["rows"]
    assert rows["limited"]["requests"] - rows["limited"]["errors"] == OPTIONS.rpm
    assert rows["spender"]["requests"] - rows["spender"]["errors"] == OPTIONS.budget
    assert usage["ok"]


def test_the_checks_catch_replicas_that_do_not_share_state(tmp_path: Path) -> None:
    """The negative control: the same run with every replica on its own memory store fails (a),
    (b) and (d), so the checks above can fail."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    alone = asyncio.run(measure(replace(OPTIONS, shared_store=False), tmp_path, say=lambda _: None))
    checks = alone["checks"]
    assert checks["rpm"]["statuses"].get("200", 0) > OPTIONS.rpm and not checks["rpm"]["ok"]
    assert checks["budget"]["admitted"] > OPTIONS.budget and not checks["budget"]["ok"]
    assert not checks["usage"]["identical"] and not checks["usage"]["ok"]
