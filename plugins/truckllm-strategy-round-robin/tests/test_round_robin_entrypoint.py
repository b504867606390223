"""The ``strategy-round-robin`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import random

import pytest
import truckllm_strategy_round_robin

from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.plugins import list_plugins, make_plugin_manager
from truckllm.types import Candidate, Deployment, KeyRef, Provider, SelectionContext

ENTRY_POINT = "strategy-round-robin"
STRATEGY = "round-robin"


class _Stats:
    in_flight = 0
    key_in_flight = 0
    latency_ewma: float | None = None
    ttft_ewma: float | None = None
    successes = 0
    failures = 0
    requests_last_minute = 0
    tokens_last_minute = 0
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    weight_factor = 1.0


def _candidates(n: int) -> list[Candidate]:
    provider = Provider(name="p", type="mock", base_url="http://upstream.test")
    return [
        Candidate(
            id=f"a#{i}:p/k",
            deployment=Deployment(alias="a", index=i, provider="p", model=f"m{i}"),
            provider=provider,
            key=KeyRef(provider="p", name="k"),
            stats=_Stats(),
        )
        for i in range(n)
    ]


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_strategy() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_strategy_round_robin
    assert truckllm_strategy_round_robin.TRUCKLLM_API == HOOKSPEC_VERSION
    assert host.strategies[STRATEGY].description
    assert host.owners[("strategies", STRATEGY)] == ENTRY_POINT
    assert not [f for f in host.failures if f.name == ENTRY_POINT]
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-strategy-round-robin"]
    assert row["entry_point"] == f"{ENTRY_POINT} = truckllm_strategy_round_robin"
    assert row["hooks"] == ["register_strategies", "select_provider"]
    assert STRATEGY in host.registry().strategies


def test_hook_call_through_the_manager() -> None:
    host = make_plugin_manager()
    cands = _candidates(3)
    context = SelectionContext(alias="a", now=0.0, random=random.Random(1), state={})
    ordered = host.hook.select_provider(strategy=STRATEGY, candidates=cands, context=context)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cands)
    # another strategy's name is not ours: the kernel's ``first`` answers
    first = host.hook.select_provider(strategy="first", candidates=cands, context=context)
    assert first == cands


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=[ENTRY_POINT])
    assert host.pm.get_plugin(ENTRY_POINT) is None
    assert STRATEGY not in host.strategies
