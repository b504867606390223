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

import random
from collections.abc import Callable, Sequence
from typing import Any

from truckllm import hookimpl
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "round-robin"
"""The strategy name, as written in ``models.<alias>.strategy``."""

_TURNS = "last_turn"
_TICK = "tick"


def _tiers(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by ``deployment.priority``, lowest first, each in config order."""
    if not candidates:
        return []
    first = candidates[0].deployment.priority
    if all(c.deployment.priority == first for c in candidates):
        return [list(candidates)]
    groups: dict[int, list[Candidate]] = {}
    for cand in candidates:
        groups.setdefault(cand.deployment.priority, []).append(cand)
    return [groups[p] for p in sorted(groups)]


def _turns(state: dict[str, Any], candidates: Sequence[Candidate]) -> dict[str, int]:
    """Each candidate's last turn, from the kernel's per-alias state (pruned after reloads)."""
    turns = state.get(_TURNS)
    if not isinstance(turns, dict):
        turns = state[_TURNS] = {}
    if len(turns) > 2 * len(candidates) + 16:
        present = {c.id for c in candidates}
        for ident in [i for i in turns if i not in present]:
            del turns[ident]
    return turns


def _rotate(
    tier: list[Candidate], turns: dict[str, int], tick: int, rng: random.Random
) -> tuple[list[Candidate], int]:
    """Order one tier by oldest turn; the leader takes a turn. Returns the order and the next tick."""
    ranked = sorted(tier, key=lambda c: turns.get(c.id, -1))
    for i, cand in enumerate(ranked):
        turns[cand.id] = tick
        tick += 1
        factor = float(cand.stats.weight_factor)
        if factor >= 1.0 or rng.random() < factor:
            if i:
                ranked.insert(0, ranked.pop(i))
            break
    return ranked, tick


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
    turns = _turns(state, candidates)
    tick = state.get(_TICK)
    if not isinstance(tick, int):
        tick = max(turns.values(), default=-1) + 1
    rng: random.Random = context.random
    ordered: list[Candidate] = []
    for tier in _tiers(candidates):
        ranked, tick = _rotate(tier, turns, tick, rng)
        ordered.extend(ranked)
    state[_TICK] = tick
    return ordered
