"""TruckLLM strategy plugin ``least-latency``: the fastest candidate first, with exploration.

Candidates are grouped into tiers by ``deployment.priority`` (lower number first). Within a tier:

1. candidates with no latency figure yet come first (exploration), fewest in flight first, so a
   burst of requests does not pile onto the one unmeasured key;
2. then the others by their latency EWMA, lowest first: ``stats.ttft_ewma`` (time to first
   token) for stream requests when the candidate has one, otherwise ``stats.latency_ewma``, the
   whole-request latency, which is an upper bound of the time to first token;
3. ties are broken at random (``context.random``).

With probability :data:`EXPLORE_PROBABILITY` a random other candidate of the first tier is moved
to the front, so a key whose figure is stale (it was slow, or it is back from a cooldown) gets
some traffic and a fresh figure. Slow start: a first candidate whose ``stats.weight_factor`` is
below 1 keeps the front only with that probability, otherwise the next one leads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.kit.selection import TIE_RESOLUTION, RandomSource, rank_tiers, slow_start_demote, sort_by
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = [
    "EXPLORE_PROBABILITY",
    "NAME",
    "TRUCKLLM_API",
    "latency_of",
    "register_strategies",
    "select_provider",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "least-latency"
"""The strategy name, as written in ``models.<alias>.strategy``."""

EXPLORE_PROBABILITY = 0.05
"""How often a random other candidate of the first tier is tried first."""

_UNMEASURED = -float(2**31)


def latency_of(candidate: Candidate, stream: bool) -> float | None:
    """The figure ``least-latency`` ranks ``candidate`` by, in seconds.

    :param candidate: the candidate.
    :param stream: the request is a stream: prefer the time to first token.
    :returns: the TTFT EWMA for streams when known, else the latency EWMA, else ``None``.
    """
    stats = candidate.stats
    if stream:
        ttft = stats.ttft_ewma
        if ttft is not None:
            return float(ttft)
    latency = stats.latency_ewma
    return None if latency is None else float(latency)


def _rank(tier: list[Candidate], stream: bool, rng: RandomSource) -> list[Candidate]:
    """Unmeasured first (fewest in flight), then by latency; ties at random.

    One float per candidate sorts faster than tuples. Unmeasured: ``-2**31 + in_flight + u``;
    measured: ``latency + 1e-9 * u``, with ``u`` uniform in [0, 1): figures within a nanosecond
    are ties.
    """
    draw = rng.random
    scores: list[float] = []
    for cand in tier:
        latency = latency_of(cand, stream)
        if latency is None:
            scores.append(_UNMEASURED + cand.stats.in_flight + draw())
        else:
            scores.append(latency + TIE_RESOLUTION * draw())
    return sort_by(tier, scores)


def _lead(ranked: list[Candidate], rng: RandomSource) -> None:
    """First tier: explore with probability ``EXPLORE_PROBABILITY``, then slow start."""
    if len(ranked) > 1:
        if rng.random() < EXPLORE_PROBABILITY:
            ranked.insert(0, ranked.pop(rng.randrange(1, len(ranked))))
        slow_start_demote(ranked, rng)


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``least-latency`` strategy."""
    register(
        StrategySpec(
            name=NAME,
            description="lowest latency EWMA first (time to first token for streams), "
            "unmeasured first, 5% exploration",
        )
    )


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` fastest first, tier by tier; ``None`` if not ``least-latency``."""
    if strategy != NAME:
        return None
    rng, stream = context.random, context.stream
    return rank_tiers(candidates, lambda tier: _rank(tier, stream, rng), rng, _lead)
