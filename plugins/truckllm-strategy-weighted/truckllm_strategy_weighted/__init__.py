"""TruckLLM strategy plugin ``weighted``: smooth weighted round-robin within priority tiers.

The default strategy. Candidates are grouped into tiers by ``deployment.priority`` (lower number
first). In each tier, one round of nginx's smooth weighted round-robin (SWRR) runs over the
candidates with a positive effective weight: every candidate's current weight grows by its
effective weight, the one with the highest current weight is picked (the first in config order on
a tie) and loses the tier's total. The pick comes first, then the tier's other candidates by
descending current weight (who would be picked next). Tiers follow one another; candidates with
zero effective weight (drained) come after every tier.

Effective weight is ``deployment.weight * key.weight * stats.weight_factor``: a key that slow-starts
after a cooldown or ejection ramps from 10% of its share to 100%. The result depends only on the
candidates and ``context.state`` (current weights by ``candidate.id``), never on randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.kit.selection import effective_weight, per_key, state_table, tiers
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "effective_weight", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "weighted"
"""The strategy name, as written in ``models.<alias>.strategy``."""

_STATE = "current_weights"


def _weight_factor(candidate: Candidate) -> float:
    return float(candidate.stats.weight_factor)


def _swrr_round(tier: list[Candidate], weights: list[float], current: dict[str, float]) -> list[Candidate]:
    """One SWRR round over ``tier``: the pick first, then the rest by descending current weight."""
    total = 0.0
    best = 0
    best_weight = -math.inf
    values: list[float] = []
    for i, (cand, weight) in enumerate(zip(tier, weights, strict=True)):
        value = current.get(cand.id, 0.0) + weight
        values.append(value)
        total += weight
        if value > best_weight:
            best, best_weight = i, value
    values[best] -= total
    for cand, value in zip(tier, values, strict=True):
        current[cand.id] = value
    rest = sorted((i for i in range(len(tier)) if i != best), key=values.__getitem__, reverse=True)
    return [tier[best], *(tier[i] for i in rest)]


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``weighted`` strategy."""
    register(
        StrategySpec(
            name=NAME,
            description="smooth weighted round-robin (deployment weight x key weight x slow start) "
            "within priority tiers",
        )
    )


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` by smooth weighted round-robin, tier by tier; ``None`` if not ``weighted``."""
    if strategy != NAME:
        return None
    current: dict[str, float] = state_table(context.state, _STATE, candidates)
    factors_of = per_key(_weight_factor)  # slow start is per key: read it once per key
    ordered: list[Candidate] = []
    drained: list[Candidate] = []
    for tier in tiers(candidates):
        live: list[Candidate] = []
        weights: list[float] = []
        for cand, factor in zip(tier, factors_of(tier), strict=True):
            weight = effective_weight(cand, factor)
            if weight > 0.0:
                live.append(cand)
                weights.append(weight)
            else:
                drained.append(cand)
        if live:
            ordered.extend(_swrr_round(live, weights, current))
    ordered.extend(drained)
    return ordered
