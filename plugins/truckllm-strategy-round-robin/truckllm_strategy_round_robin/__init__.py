"""TruckLLM strategy plugin ``round-robin``: take turns, tier by tier.

Candidates are grouped into tiers by ``deployment.priority`` (lower number first). Within a tier
the candidate whose last turn is the oldest leads (one never served yet first, in config order),
and the others follow in the order their turns come. Turns are counted by ``candidate.id`` in
``context.state``, so the rotation stays fair when candidates leave (cooldown, limits) and come
back, and survives config reloads. Each tier's leader takes a turn on every request, so traffic
that fails over to a lower tier rotates as well.

Slow start: a candidate whose ``stats.weight_factor`` is below 1 (back from a cooldown or
ejection) takes its turn only with that probability (drawn from ``context.random``); a skipped
turn counts as taken, so it serves ``weight_factor`` of its usual share. Weights are not read:
use ``weighted`` for uneven shares.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

from truckllm import hookimpl
from truckllm.kit.selection import RandomSource, slow_start_demote, state_table, tiers
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "round-robin"
"""The strategy name, as written in ``models.<alias>.strategy``."""

_TURNS = "last_turn"
_TICK = "tick"


def _rotate(
    tier: list[Candidate], turns: dict[str, int], ticks: Iterator[int], rng: RandomSource
) -> list[Candidate]:
    """Order one tier by oldest turn; the leader takes a turn (and so do slow starters it passed)."""
    ranked = sorted(tier, key=lambda c: turns.get(c.id, -1))

    def take_turn(cand: Candidate) -> None:
        turns[cand.id] = next(ticks)

    slow_start_demote(ranked, rng, on_consider=take_turn)
    return ranked


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``round-robin`` strategy."""
    register(StrategySpec(name=NAME, description="take turns within priority tiers (ignores weights)"))


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` by whose turn it is, tier by tier; ``None`` if not ``round-robin``."""
    if strategy != NAME:
        return None
    state = context.state
    turns: dict[str, int] = state_table(state, _TURNS, candidates)
    tick = state.get(_TICK)
    if not isinstance(tick, int):
        tick = max(turns.values(), default=-1) + 1
    ticks = itertools.count(tick)
    ordered: list[Candidate] = []
    for tier in tiers(candidates):
        ordered.extend(_rotate(tier, turns, ticks, context.random))
    state[_TICK] = next(ticks)
    return ordered
