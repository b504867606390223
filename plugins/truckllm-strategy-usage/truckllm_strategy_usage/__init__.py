"""TruckLLM strategy plugin ``usage``: the candidate with most rate-limit headroom first.

Candidates are grouped into tiers by ``deployment.priority`` (lower number first). Within a tier
they are ordered by their headroom, highest first: the smallest of the fractions still free of
every limit known for the key,

- the configured ``key.rpm``: ``(rpm - requests_last_minute) / rpm``;
- the configured ``key.tpm``: ``(tpm - tokens_last_minute - estimated_tokens) / tpm``;
- the provider's own figures (``x-ratelimit-remaining-*``): ``remaining_requests / limit`` and
  ``(remaining_tokens - estimated_tokens) / limit``, where ``limit`` is the largest remaining
  figure this strategy has seen for the key (a provider's remaining figure right after its
  window resets is its limit). Absolute figures cannot be compared with fractions; the learned
  limits are kept by ``provider/key`` in ``context.state``.

A candidate with no figure at all (no limits configured, no provider headers yet) counts as full
headroom (1.0), behind candidates known to have full headroom: it is tried before any key that is
partly used, which also gets its rate-limit headers read. A request that would not fit gives a
negative fraction and sorts last. Ties are broken at random (``context.random``).

Slow start: a first candidate whose ``stats.weight_factor`` is below 1 (back from a cooldown, so
with plenty of headroom) keeps the front only with that probability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from truckllm import hookimpl
from truckllm.kit.selection import RandomSource, key_id, per_key, rank_tiers, sort_by, state_table
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = ["NAME", "TRUCKLLM_API", "headroom", "register_strategies", "select_provider"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "usage"
"""The strategy name, as written in ``models.<alias>.strategy``."""

_PEAK_REQUESTS = "peak_remaining_requests"
_PEAK_TOKENS = "peak_remaining_tokens"


def headroom(
    candidate: Candidate,
    estimated_tokens: int = 0,
    peak_requests: int | None = None,
    peak_tokens: int | None = None,
) -> float | None:
    """The fraction of its tightest known limit that ``candidate`` has left for this request.

    :param candidate: the candidate.
    :param estimated_tokens: tokens this request is expected to use.
    :param peak_requests: the provider's request limit, or the most remaining requests seen.
    :param peak_tokens: the provider's token limit, or the most remaining tokens seen.
    :returns: at most 1.0 (negative when the request would not fit), or ``None`` with no figure.
    """
    stats, key = candidate.stats, candidate.key
    return _fraction(
        key.rpm,
        key.tpm,
        _Figures(stats, key.rpm, key.tpm),
        estimated_tokens,
        peak_requests,
        peak_tokens,
    )


class _Figures:
    """A key's figures as read once per selection (``PairStats`` sums 60 buckets per read)."""

    __slots__ = ("remaining_requests", "remaining_tokens", "requests", "tokens")

    def __init__(self, stats: Any, rpm: int | None, tpm: int | None) -> None:
        self.requests = int(stats.requests_last_minute) if rpm else 0
        self.tokens = int(stats.tokens_last_minute) if tpm else 0
        remaining = stats.remaining_requests
        self.remaining_requests = None if remaining is None else int(remaining)
        remaining = stats.remaining_tokens
        self.remaining_tokens = None if remaining is None else int(remaining)


def _fraction(
    rpm: int | None,
    tpm: int | None,
    figures: _Figures,
    estimated: int,
    peak_requests: int | None,
    peak_tokens: int | None,
) -> float | None:
    """The smallest free fraction over every known limit, capped at 1.0; ``None`` if none is known."""
    fractions: list[float] = []
    if rpm:
        fractions.append((rpm - figures.requests) / rpm)
    if tpm:
        fractions.append((tpm - figures.tokens - estimated) / tpm)
    if figures.remaining_requests is not None:
        limit = max(figures.remaining_requests, peak_requests or 0)
        fractions.append(figures.remaining_requests / limit if limit > 0 else 0.0)
    if figures.remaining_tokens is not None:
        limit = max(figures.remaining_tokens, peak_tokens or 0)
        fractions.append((figures.remaining_tokens - estimated) / limit if limit > 0 else 0.0)
    return min(min(fractions), 1.0) if fractions else None


def _learn(peaks: dict[str, int], name: str, remaining: int | None) -> int | None:
    """Remember the largest remaining figure seen for a key; return it (``None``: none seen)."""
    if remaining is None:
        return peaks.get(name)
    peak = max(remaining, peaks.get(name, 0))
    peaks[name] = peak
    return peak


def _rank(tier: list[Candidate], rooms: list[float | None], rng: RandomSource) -> list[Candidate]:
    """Most headroom first; no figure counts as full, behind known full; ties at random."""
    keys = [(-1.0, 1, rng.random()) if room is None else (-room, 0, rng.random()) for room in rooms]
    return sort_by(tier, keys)


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``usage`` strategy."""
    register(
        StrategySpec(
            name=NAME,
            description="most rate-limit headroom first (configured rpm/tpm and provider headers)",
        )
    )


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Order ``candidates`` by headroom, most first, tier by tier; ``None`` if not ``usage``."""
    if strategy != NAME:
        return None
    rng = context.random
    estimated = max(int(context.estimated_tokens), 0)
    peak_requests: dict[str, int] = state_table(context.state, _PEAK_REQUESTS, candidates, key_id)
    peak_tokens: dict[str, int] = state_table(context.state, _PEAK_TOKENS, candidates, key_id)

    def read_room(cand: Candidate) -> float | None:
        key = cand.key
        figures = _Figures(cand.stats, key.rpm, key.tpm)
        name = key_id(cand)
        return _fraction(
            key.rpm,
            key.tpm,
            figures,
            estimated,
            _learn(peak_requests, name, figures.remaining_requests),
            _learn(peak_tokens, name, figures.remaining_tokens),
        )

    rooms_of = per_key(read_room)  # every figure is per key: one reading per key
    return rank_tiers(candidates, lambda tier: _rank(tier, rooms_of(tier), rng), rng)
