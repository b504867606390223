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
from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.kit.selection import TIE_RESOLUTION, RandomSource, rank_tiers, sort_by
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


def _rank(tier: list[Candidate], prompt: float, completion: float, rng: RandomSource) -> list[Candidate]:
    """Cheapest first (unpriced last); equal costs by latency, unmeasured first, then at random.

    Sort key ``(cost, tie)``: an unpriced cost is +inf; the tie is ``-2 + u`` when unmeasured, else
    ``latency + 1e-9 * u``, with ``u`` uniform in [0, 1): equal latencies (within a nanosecond) are
    broken at random.
    """
    draw = rng.random
    keys: list[tuple[float, float]] = []
    for cand in tier:
        cost = estimated_cost(cand.deployment.price, prompt, completion)
        latency = cand.stats.latency_ewma
        keys.append(
            (
                math.inf if cost is None else cost,
                -2.0 + draw() if latency is None else latency + TIE_RESOLUTION * draw(),
            )
        )
    return sort_by(tier, keys)


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
    rng = context.random
    estimate = max(int(context.estimated_tokens), 0)
    prompt = completion = estimate / 2 if estimate else 1.0
    return rank_tiers(candidates, lambda tier: _rank(tier, prompt, completion, rng), rng)
