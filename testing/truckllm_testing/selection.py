"""Test kit for strategy plugins: candidates, stats, contexts and the checks every strategy owes.

Needs the test extra (``truckllm[test]``: pytest and hypothesis). A strategy plugin's tests build
candidates with :func:`candidate` (fake stats by default, the kernel's real ``PairStats`` from a
:class:`HealthHarness` when the slow start or the 60-s windows matter), contexts with
:func:`selection_context`, and call the strategy through a :class:`Selector`, which checks that
every answer is a permutation of the candidates:

```python
import my_strategy
from my_strategy import select_provider

from truckllm_testing.selection import (
    Selector, StrategyEntryPointConformance, candidate, check_foreign_strategies,
    check_selection_property, selection_context,
)

SELECT = Selector(select_provider, "my-strategy")


def test_idle_first() -> None:
    cands = [candidate("busy", in_flight=3), candidate("idle")]
    assert SELECT.order(cands, selection_context(seed=1)) == ["idle", "busy"]


def test_foreign_strategy_gets_none() -> None:
    check_foreign_strategies(select_provider, "my-strategy")


def test_result_is_always_a_permutation_in_tier_order() -> None:
    check_selection_property(select_provider, "my-strategy")


class TestEntryPoint(StrategyEntryPointConformance):
    module = my_strategy
    entry_point = "strategy-my-strategy"
    strategy = "my-strategy"
```
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.config.durations import Duration
from truckllm._internal.config.schema import CooldownConfig
from truckllm._internal.health import HealthRegistry, PairStats
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.types import Candidate, Deployment, KeyRef, Price, Provider, RateLimits, SelectionContext

__all__ = [
    "FOREIGN_STRATEGIES",
    "PROVIDER",
    "FakeStats",
    "HealthHarness",
    "NoRandom",
    "SelectProvider",
    "Selector",
    "StrategyEntryPointConformance",
    "assert_permutation",
    "assert_tiers_respected",
    "candidate",
    "candidate_lists",
    "check_foreign_strategies",
    "check_selection_property",
    "deployment",
    "key_ref",
    "recovering_pair",
    "selection_context",
]

SelectProvider = Callable[[str, Sequence[Candidate], SelectionContext], list[Candidate] | None]
"""The signature of a ``select_provider`` hook implementation."""

PROVIDER = Provider(name="p", type="mock", base_url="http://upstream.test")
"""The provider every candidate of this kit is on unless told otherwise."""

FOREIGN_STRATEGIES = (
    "first",
    "weighted",
    "round-robin",
    "least-latency",
    "least-busy",
    "usage",
    "cost",
    "priority",
    "",
)
"""Strategy names :func:`check_foreign_strategies` tries (minus the strategy's own)."""


@dataclass
class FakeStats:
    """A settable stand-in for the kernel's ``PairStats`` (every ``CandidateStats`` field)."""

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
    limit_requests: int | None = None
    limit_tokens: int | None = None
    weight_factor: float = 1.0


class NoRandom:
    """A random source that fails the test when used: for strategies that must not draw."""

    def __init__(self, strategy: str = "the strategy") -> None:
        self.strategy = strategy

    def random(self) -> float:
        """Fail: nothing may be drawn."""
        raise AssertionError(f"{self.strategy} drew a random number")

    def randrange(self, start: int, stop: int, /) -> int:
        """Fail: nothing may be drawn."""
        raise AssertionError(f"{self.strategy} drew a random number")


def deployment(
    *,
    alias: str = "a",
    index: int = 0,
    provider: str = "p",
    model: str = "m",
    weight: float = 1.0,
    priority: int = 0,
    price: Price | None = None,
) -> Deployment:
    """A :class:`~truckllm.types.Deployment` with test defaults (alias ``a``, provider ``p``, model ``m``)."""
    return Deployment(
        alias=alias,
        index=index,
        provider=provider,
        model=model,
        weight=weight,
        priority=priority,
        price=price,
    )


def key_ref(
    name: str,
    *,
    provider: str = "p",
    weight: float = 1.0,
    rpm: int | None = None,
    tpm: int | None = None,
) -> KeyRef:
    """A :class:`~truckllm.types.KeyRef` named ``name`` on provider ``p``."""
    return KeyRef(provider=provider, name=name, weight=weight, rpm=rpm, tpm=tpm)


def candidate(
    ident: str,
    weight: float = 1.0,
    *,
    key: str | None = None,
    key_weight: float = 1.0,
    priority: int = 0,
    price: Price | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    index: int = 0,
    model: str = "m",
    alias: str = "a",
    provider: Provider = PROVIDER,
    stats: Any = None,
    **stats_fields: Any,
) -> Candidate:
    """A candidate with id ``ident``.

    :param ident: the candidate's id, and its key's name unless ``key`` is given.
    :param weight: ``deployment.weight``.
    :param key: the key's name, to share one key between several candidates.
    :param key_weight: ``key.weight``.
    :param priority: ``deployment.priority``.
    :param price: ``deployment.price``.
    :param rpm: ``key.rpm``.
    :param tpm: ``key.tpm``.
    :param index: ``deployment.index``.
    :param model: ``deployment.model``.
    :param alias: ``deployment.alias``.
    :param provider: the provider (its name is the deployment's and the key's provider).
    :param stats: the stats object (a ``PairStats`` from :class:`HealthHarness`, a
        :class:`FakeStats`, anything with the fields the strategy reads).
    :param stats_fields: without ``stats``: the :class:`FakeStats` fields to set.
    """
    if stats is None:
        stats = FakeStats(**stats_fields)
    elif stats_fields:
        raise TypeError("candidate(): give stats or stats fields, not both")
    return Candidate(
        id=ident,
        deployment=deployment(
            alias=alias,
            index=index,
            provider=provider.name,
            model=model,
            weight=weight,
            priority=priority,
            price=price,
        ),
        provider=provider,
        key=key_ref(
            ident if key is None else key, provider=provider.name, weight=key_weight, rpm=rpm, tpm=tpm
        ),
        stats=stats,
    )


def selection_context(
    seed: int = 0,
    *,
    state: dict[str, Any] | None = None,
    rng: Any = None,
    alias: str = "a",
    now: float = 0.0,
    estimated_tokens: int = 0,
    stream: bool = False,
) -> SelectionContext:
    """A selection context with its own state and a seeded random source.

    :param seed: the seed of the ``random.Random`` (unless ``rng`` is given).
    :param state: the strategy's state (default: a new empty dict); pass one to share it.
    :param rng: another random source, e.g. :class:`NoRandom`.
    :param alias: ``context.alias``.
    :param now: ``context.now``.
    :param estimated_tokens: ``context.estimated_tokens``.
    :param stream: ``context.stream``.
    """
    return SelectionContext(
        alias=alias,
        now=now,
        random=random.Random(seed) if rng is None else rng,
        state={} if state is None else state,
        estimated_tokens=estimated_tokens,
        stream=stream,
    )


class HealthHarness:
    """The kernel's :class:`~truckllm._internal.health.HealthRegistry` on a settable clock.

    Set :attr:`now` to move time; every ``PairStats`` of the registry reads it.

    :param now: the clock's start, in seconds.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.registry = HealthRegistry(clock=lambda: self.now)

    def pair(self, key: str, *, alias: str = "a", provider: str = "p", model: str = "m") -> PairStats:
        """The real ``PairStats`` of one (deployment, key), as the kernel gives strategies."""
        return self.registry.pair(alias, provider, model, key)

    def eject(self, stats: PairStats, seconds: float = 10.0) -> None:
        """Eject ``stats``'s key now for ``seconds``; it slow-starts for 30 s after that."""
        self.registry.record_failure(
            stats.key_state, CooldownConfig(failures=1, duration=Duration(seconds)), self.now
        )

    def report_limits(self, stats: PairStats, limits: RateLimits) -> None:
        """Record the provider's rate-limit figures for ``stats``'s key now, as the kernel does."""
        stats.key_state.limits = limits
        stats.key_state.limits_at = self.now


def recovering_pair(at: float) -> tuple[PairStats, PairStats, HealthHarness]:
    """Real ``PairStats``: a ``stable`` key and a ``recovering`` one, ejected at t=0 for 10 s.

    The clock is then set to ``at``; set ``harness.now = 10 + 30 * f`` for a slow-start factor
    ``f`` (0.1 at least, 1.0 from t=40).

    :returns: ``(stable, recovering, harness)``.
    """
    health = HealthHarness()
    stable = health.pair("stable")
    recovering = health.pair("recovering")
    health.eject(recovering, 10.0)
    health.now = at
    return stable, recovering, health


def assert_permutation(ordered: Sequence[Candidate] | None, candidates: Sequence[Candidate]) -> None:
    """``ordered`` holds exactly ``candidates``, each once (ids compared)."""
    assert ordered is not None, "select_provider returned None for its own strategy"
    got, want = sorted(c.id for c in ordered), sorted(c.id for c in candidates)
    assert got == want, f"not a permutation of the candidates: {got} != {want}"


def assert_tiers_respected(ordered: Sequence[Candidate]) -> None:
    """No candidate comes before one with a lower ``deployment.priority``."""
    priorities = [c.deployment.priority for c in ordered]
    assert priorities == sorted(priorities), f"priority tiers out of order: {priorities}"


class Selector:
    """Calls one strategy's ``select_provider`` under its own name, checking each answer.

    :param select_provider: the plugin's hook implementation.
    :param strategy: the strategy name it answers to.
    """

    def __init__(self, select_provider: SelectProvider, strategy: str) -> None:
        self.select_provider = select_provider
        self.strategy = strategy

    def select(self, candidates: Sequence[Candidate], context: SelectionContext) -> list[Candidate]:
        """The ordered candidates, checked to be a permutation of ``candidates``."""
        ordered = self.select_provider(self.strategy, candidates, context)
        assert_permutation(ordered, candidates)
        assert ordered is not None
        return ordered

    def order(self, candidates: Sequence[Candidate], context: SelectionContext) -> list[str]:
        """The ids :meth:`select` returns, in order."""
        return [c.id for c in self.select(candidates, context)]

    def picks(
        self, candidates: Sequence[Candidate], n: int, context: SelectionContext | None = None
    ) -> list[str]:
        """The first id of ``n`` successive selections sharing ``context`` (default: a new one)."""
        context = selection_context() if context is None else context
        return [self.order(candidates, context)[0] for _ in range(n)]

    def leaders(self, candidates: Sequence[Candidate], n: int, context: SelectionContext) -> Counter[str]:
        """How often each candidate comes first over ``n`` selections sharing ``context``."""
        return Counter(self.picks(candidates, n, context))


def check_foreign_strategies(
    select_provider: SelectProvider,
    strategy: str,
    others: Sequence[str] = (),
) -> None:
    """``select_provider`` answers ``None`` to every strategy name but its own.

    Tries :data:`FOREIGN_STRATEGIES`, ``others``, and the own name in other cases and with
    spaces around it (strategy names are matched exactly).
    """
    names = {*FOREIGN_STRATEGIES, *others, strategy.upper(), strategy.title(), f" {strategy}", f"{strategy} "}
    names.discard(strategy)
    cands = [candidate("a"), candidate("b", priority=1)]
    for name in sorted(names):
        context = selection_context(rng=NoRandom(f"select_provider({name!r})"))
        assert select_provider(name, cands, context) is None, f"answered for strategy {name!r}"
        assert context.state == {}, f"touched the state for strategy {name!r}"


def _fake_stats() -> st.SearchStrategy[FakeStats]:
    return st.builds(
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


def candidate_lists(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[list[Candidate]]:
    """A hypothesis strategy: lists of candidates ``c0``, ``c1``... (one key each) with random
    priorities (-2 to 2), deployment and key weights (zero included), prices (none, free or
    paid), rpm/tpm limits and :class:`FakeStats` (slow start included)."""
    spec = st.tuples(
        st.integers(min_value=-2, max_value=2),  # priority
        st.floats(min_value=0, max_value=100, allow_nan=False),  # deployment weight
        st.floats(min_value=0, max_value=10, allow_nan=False),  # key weight
        st.none()
        | st.builds(
            Price, input=st.sampled_from([0.0, 0.15, 2.5, 3.0]), output=st.sampled_from([0.0, 0.6, 10.0])
        ),
        st.none() | st.integers(min_value=1, max_value=500),  # rpm
        st.none() | st.integers(min_value=1, max_value=100_000),  # tpm
        _fake_stats(),
    )
    return st.lists(spec, min_size=min_size, max_size=max_size).map(
        lambda specs: [
            candidate(f"c{i}", w, key_weight=kw, priority=p, price=price, rpm=rpm, tpm=tpm, stats=stats)
            for i, (p, w, kw, price, rpm, tpm, stats) in enumerate(specs)
        ]
    )


def check_selection_property(
    select_provider: SelectProvider,
    strategy: str,
    *,
    tiered: bool = True,
    check: Callable[[list[Candidate], list[Candidate]], None] | None = None,
    max_examples: int = 200,
) -> None:
    """Property test: whatever the candidates, the answer is a permutation of them, in tier order.

    Draws :func:`candidate_lists`, a seed, ``stream`` and ``estimated_tokens``, then runs one to
    six selections sharing one context, each over a random non-empty subset of the candidates
    (as the kernel removes unavailable ones).

    :param select_provider: the plugin's hook implementation.
    :param strategy: its strategy name.
    :param tiered: also check :func:`assert_tiers_respected` (``False`` for a strategy that puts
        some candidates after every tier, like drained ones in ``weighted``: check those with
        ``check``).
    :param check: called with ``(ordered, candidates)`` after each selection, for the
        strategy's own invariants.
    :param max_examples: hypothesis examples.
    """

    @settings(max_examples=max_examples, deadline=None)
    @given(
        cands=candidate_lists(),
        seed=st.integers(min_value=0, max_value=2**32),
        stream=st.booleans(),
        estimated_tokens=st.integers(min_value=0, max_value=50_000),
        rounds=st.integers(min_value=1, max_value=6),
        data=st.data(),
    )
    def run(
        cands: list[Candidate],
        seed: int,
        stream: bool,
        estimated_tokens: int,
        rounds: int,
        data: st.DataObject,
    ) -> None:
        context = selection_context(seed, stream=stream, estimated_tokens=estimated_tokens)
        for _ in range(rounds):
            usable = data.draw(st.lists(st.sampled_from(cands), min_size=1, unique_by=lambda c: c.id))
            ordered = select_provider(strategy, usable, context)
            assert_permutation(ordered, usable)
            assert ordered is not None
            if tiered:
                assert_tiers_respected(ordered)
            if check is not None:
                check(ordered, usable)

    run()


class StrategyEntryPointConformance:
    """The entry-point tests every strategy plugin owes: subclass it as ``Test...`` and set
    :attr:`module`, :attr:`entry_point` and :attr:`strategy`.

    Checks that the installed distribution's entry point loads through the kernel's plugin
    manager with the right API version, registers the strategy under its name, answers through
    ``host.hook.select_provider`` (and lets the kernel's ``first`` answer for its name), and is
    not loaded when disabled.
    """

    module: ClassVar[ModuleType]
    """The plugin module (``import truckllm_strategy_x``)."""
    entry_point: ClassVar[str]
    """The entry point's name in the ``truckllm`` group, e.g. ``strategy-weighted``."""
    strategy: ClassVar[str]
    """The strategy name it registers, e.g. ``weighted``."""
    distribution: ClassVar[str | None] = None
    """The distribution's name; default ``truckllm-`` + :attr:`entry_point`."""

    @pytest.fixture(autouse=True)
    def _autoload(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def test_entry_point_loads_and_registers_the_strategy(self) -> None:
        """Loaded, API version, registered, listed with its two hooks."""
        host = make_plugin_manager()
        assert host.pm.get_plugin(self.entry_point) is self.module
        assert self.module.TRUCKLLM_API == HOOKSPEC_VERSION
        assert host.strategies[self.strategy].description
        assert host.owners[("strategies", self.strategy)] == self.entry_point
        assert not [f for f in host.failures if f.name == self.entry_point]
        distribution = self.distribution or f"truckllm-{self.entry_point}"
        (row,) = [r for r in list_plugins(host) if r["name"] == distribution]
        assert row["entry_point"] == f"{self.entry_point} = {self.module.__name__}"
        assert row["hooks"] == ["register_strategies", "select_provider"]
        assert self.strategy in host.registry().strategies

    def test_hook_call_through_the_manager(self) -> None:
        """The hook answers for the strategy through pluggy; another name is left to others."""
        host = make_plugin_manager()
        cands = [candidate(f"a#{i}:p/k", key="k", index=i, model=f"m{i}") for i in range(3)]
        context = selection_context(1)
        ordered = host.hook.select_provider(strategy=self.strategy, candidates=cands, context=context)
        assert sorted(c.id for c in ordered) == sorted(c.id for c in cands)
        # another strategy's name is not ours: the kernel's ``first`` answers
        first = host.hook.select_provider(strategy="first", candidates=cands, context=context)
        assert first == cands

    def test_disabled_entry_point_is_not_loaded(self) -> None:
        """``plugins.disable`` keeps the entry point out, and its strategy with it."""
        host = make_plugin_manager(disabled=[self.entry_point])
        assert host.pm.get_plugin(self.entry_point) is None
        assert self.strategy not in host.strategies
