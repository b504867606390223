"""TruckLLM strategy plugin ``least-busy``: the candidate with fewest requests in flight first.

Candidates are grouped into tiers by ``deployment.priority`` (lower number first). Within a tier
they are ordered by ``stats.in_flight`` (this deployment on this key), then by
``stats.key_in_flight`` (the key across every deployment that uses it), then at random
(``context.random``).

Every candidate is compared, not a random two (Envoy's power of two choices): in-flight counts
are exact, local and updated by the kernel before the next request is routed, so the herding that
two random choices guard against with stale load figures cannot happen here, and a full sort of a
few hundred candidates costs microseconds.

Slow start: a first candidate whose ``stats.weight_factor`` is below 1 (back from a cooldown or
ejection, so idle and about to be flooded) keeps the front only with that probability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.kit.selection import RandomSource, rank_tiers, shuffle_ties
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "least-busy"
"""The strategy name, as written in ``models.<alias>.strategy``."""

_SCALE = float(2**20)


def _rank(tier: list[Candidate], rng: RandomSource) -> list[Candidate]:
    """Fewest in flight, then fewest on the key, then at random.

    One float per candidate sorts faster than tuples: ``in_flight * 2**20 + key_in_flight + u``
    with ``u`` uniform in [0, 1) (a key never has a million requests in flight).
    """
    return shuffle_ties(tier, [c.stats.in_flight * _SCALE + c.stats.key_in_flight for c in tier], rng)


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``least-busy`` strategy."""
    register(StrategySpec(name=NAME, description="fewest requests in flight first, ties at random"))


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` least busy first, tier by tier; ``None`` if not ``least-busy``."""
    if strategy != NAME:
        return None
    rng = context.random
    return rank_tiers(candidates, lambda tier: _rank(tier, rng), rng)
