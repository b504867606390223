"""TruckLLM strategy plugin ``cost``: the cheapest deployment first.

Candidates are grouped into tiers by ``deployment.priority`` (lower number first). Within a tier
they are ordered by the estimated cost of the request at ``deployment.price`` (USD per million
tokens): ``price.input * prompt + price.output * completion``. The kernel gives one estimate,
``context.estimated_tokens`` (prompt plus ``max_tokens``), without the split, so it is counted half
at the input price and half at the output price; with no estimate, one token of each. Either way
the order is that of ``input + output``.

A deployment without a price has an unknown cost and comes after every priced one of its tier (a
price of zero is free, and comes first). Equal costs are ordered by latency EWMA, a candidate
not measured yet first (so that every key of the cheapest deployment gets measured), then at random
(``context.random``).

Slow start: a first candidate whose ``stats.weight_factor`` is below 1 (back from a cooldown or
ejection) keeps the front only with that probability.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.types import Candidate, Price, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "estimated_cost", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "cost"
"""The strategy name, as written in ``models.<alias>.strategy``."""


def estimated_cost(price: Price | None, prompt_tokens: float, completion_tokens: float) -> float | None:
    """The cost in USD of a request at ``price``.

    :param price: USD per million tokens, or ``None`` when the deployment has none.
    :param prompt_tokens: tokens sent.
    :param completion_tokens: tokens generated.
    :returns: the cost, or ``None`` when the price is unknown.
    """
    if price is None:
        return None
    return (price.input * prompt_tokens + price.output * completion_tokens) / 1_000_000


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


def _slow_start(ranked: list[Candidate], rng: random.Random) -> None:
    """Let a slow-starting candidate lead only with probability ``weight_factor``."""
    for i, cand in enumerate(ranked):
        factor = float(cand.stats.weight_factor)
        if factor >= 1.0 or rng.random() < factor:
            if i:
                ranked.insert(0, ranked.pop(i))
            return


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``cost`` strategy."""
    register(
        StrategySpec(
            name=NAME,
            description="cheapest deployment.price first (unpriced last), ties by latency",
        )
    )


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` cheapest first, tier by tier; ``None`` if not ``cost``."""
    if strategy != NAME:
        return None
    rng: random.Random = context.random
    estimate = max(int(context.estimated_tokens), 0)
    prompt = completion = estimate / 2 if estimate else 1.0
    ordered: list[Candidate] = []
    for n, tier in enumerate(_tiers(candidates)):
        # (cost, tie): unpriced cost +inf; tie -2 + u when unmeasured, else latency + 1e-9 * u,
        # with u uniform in [0, 1): equal latencies (within a nanosecond) are broken at random
        keys: list[tuple[float, float]] = []
        for cand in tier:
            cost = estimated_cost(cand.deployment.price, prompt, completion)
            latency = cand.stats.latency_ewma
            keys.append(
                (
                    math.inf if cost is None else cost,
                    -2.0 + rng.random() if latency is None else latency + 1e-9 * rng.random(),
                )
            )
        ranked = [tier[i] for i in sorted(range(len(tier)), key=keys.__getitem__)]
        if n == 0:
            _slow_start(ranked, rng)
        ordered.extend(ranked)
    return ordered
