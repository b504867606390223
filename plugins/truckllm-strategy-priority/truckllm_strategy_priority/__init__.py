"""TruckLLM strategy plugin ``priority``: strict failover, by priority then config order.

Candidates are ordered by ``deployment.priority`` (lower number first) and, within one priority,
in the order the kernel gives them: config order, deployments first, then each deployment's keys.
The first candidate takes all the traffic; the next one serves only when the earlier ones are
unavailable (the kernel has already removed keys cooling down, ejected or over their limits) or
fail during the request. No state, no randomness, no slow start: a recovered primary takes its
traffic back at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "priority"
"""The strategy name, as written in ``models.<alias>.strategy``."""


def _priority(candidate: Candidate) -> int:
    return candidate.deployment.priority


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``priority`` strategy."""
    register(
        StrategySpec(name=NAME, description="strict failover: lowest priority number, then config order")
    )


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` by priority, then as given; ``None`` if not ``priority``."""
    if strategy != NAME:
        return None
    return sorted(candidates, key=_priority)  # stable: config order within a priority
