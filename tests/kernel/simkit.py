"""What the kernel's simulations share: an in-process provider type ``sim`` and a ``shuffle``
strategy (a random order from the gateway's seeded random source, every request)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.types import Candidate, ProviderSpec, SelectionContext, StrategySpec


class SimPlugin:
    """Registers provider type ``sim`` and strategy ``shuffle``; subclasses answer requests."""

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="sim", default_base_url="sim://", endpoints=frozenset({"chat"})))

    @hookimpl
    def register_strategies(self, register: Callable[[StrategySpec], None]) -> None:
        register(StrategySpec(name="shuffle"))

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        if strategy != "shuffle":
            return None
        order = list(candidates)
        context.random.shuffle(order)
        return order
