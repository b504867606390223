"""Building blocks for balancing strategies (``select_provider`` hook implementations).

Every strategy plugin shipped with TruckLLM is put together from these; third-party strategies
are welcome to use them too (depend on ``truckllm>=0.1,<0.2``). They are pure functions over
:class:`~truckllm.types.Candidate` lists: no I/O, no clock, and randomness only from the random
source the caller passes (``context.random``), so a seeded context gives reproducible orders.

The conventions the shipped strategies share:

- **Tiers.** Candidates are grouped by ``deployment.priority``, lowest number first
  (:func:`tiers`); a strategy orders each tier on its own and concatenates them, so a lower tier
  is tried only after every candidate of the tiers before it.
- **Slow start.** A key back from a cooldown or an ejection has ``stats.weight_factor`` below 1
  (10% rising to 100% over 30 s). Weight-based strategies multiply it in
  (:func:`effective_weight`); ranking strategies let such a key keep the front only with that
  probability (:func:`slow_start_demote`), in the first tier (:func:`rank_tiers`).
- **Random ties.** Equal scores are ordered at random with one draw per candidate
  (:func:`jitter`, :func:`shuffle_ties`), then sorted stably (:func:`sort_by`).
- **Per-key figures.** Several deployments may share one key, and a key's figures (slow start,
  60-s counters, provider limits) are costly to read: read them once per key and selection
  (:func:`per_key`).
- **State.** ``context.state`` is a dict the kernel keeps per (alias, strategy) across requests
  and reloads; :func:`state_table` keeps a table in it that forgets candidates gone for good.

A minimal "fewest in flight first" strategy, ties at random, slow start in the first tier::

    from truckllm import hookimpl
    from truckllm._internal.selection import rank_tiers, shuffle_ties

    @hookimpl
    def select_provider(strategy, candidates, context):
        if strategy != "my-least-busy":
            return None
        rng = context.random
        return rank_tiers(
            candidates, lambda tier: shuffle_ties(tier, [c.stats.in_flight for c in tier], rng), rng
        )

Test such a strategy with :mod:`truckllm_testing.selection`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from truckllm.types import Candidate

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

__all__ = [
    "PRUNE_SLACK",
    "TIE_RESOLUTION",
    "RandomSource",
    "effective_weight",
    "jitter",
    "key_id",
    "per_key",
    "rank_tiers",
    "shuffle_ties",
    "slow_start_demote",
    "sort_by",
    "state_table",
    "tiers",
]

_T = TypeVar("_T")

TIE_RESOLUTION = 1e-9
"""The ``resolution`` for latencies in seconds: figures within a nanosecond of each other are ties."""

PRUNE_SLACK = 16
"""A :func:`state_table` is pruned once it has more than ``2 * len(candidates) + PRUNE_SLACK`` entries."""


class RandomSource(Protocol):
    """What strategies use of ``context.random``: a :class:`random.Random` in the gateway.

    The functions of this module only call ``random()``.
    """

    def random(self) -> float:
        """A float uniform in ``[0, 1)``."""
        ...

    def randrange(self, start: int, stop: int, /) -> int:
        """An int uniform in ``[start, stop)``."""
        ...


def tiers(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Group candidates into priority tiers.

    :param candidates: the candidates, in the kernel's (config) order.
    :returns: one list per distinct ``deployment.priority``, lowest number first, each in the
        order of ``candidates``; ``[]`` for no candidates. Concatenated, the tiers are a stable
        sort of ``candidates`` by priority.
    """
    if not candidates:
        return []
    first = candidates[0].deployment.priority
    if all(c.deployment.priority == first for c in candidates):
        return [list(candidates)]
    groups: dict[int, list[Candidate]] = {}
    for cand in candidates:
        groups.setdefault(cand.deployment.priority, []).append(cand)
    return [groups[p] for p in sorted(groups)]


def effective_weight(candidate: Candidate, factor: float | None = None) -> float:
    """``deployment.weight * key.weight * stats.weight_factor``.

    :param candidate: the candidate to weigh.
    :param factor: its key's slow-start factor when already read (default: ``stats.weight_factor``,
        see :func:`per_key`).
    :returns: the weight, or ``0.0`` when it is not a positive finite number (NaN, infinite,
        negative or zero weights all drain the candidate).
    """
    if factor is None:
        factor = float(candidate.stats.weight_factor)
    weight = float(candidate.deployment.weight) * float(candidate.key.weight) * factor
    return weight if 0.0 < weight < math.inf else 0.0


def slow_start_demote(
    ranked: list[Candidate],
    rng: RandomSource,
    on_consider: Callable[[Candidate], object] | None = None,
) -> None:
    """Let a slow-starting candidate lead only with probability ``stats.weight_factor``, in place.

    Walks ``ranked`` from the front: a candidate with ``weight_factor >= 1`` takes the lead at
    once (no random draw); one below 1 takes it when ``rng.random() < weight_factor``, otherwise
    the walk goes on to the next. The candidate that takes the lead moves to the front, the others
    keep their order. When none takes it, ``ranked`` is left as it was.

    :param ranked: the candidates, best first (typically the first tier); reordered in place.
    :param rng: the random source (``context.random``).
    :param on_consider: called with each candidate the walk reaches, in order, before its draw
        (the leader last): ``round-robin`` counts those as having had their turn.
    """
    for i, cand in enumerate(ranked):
        if on_consider is not None:
            on_consider(cand)
        factor = float(cand.stats.weight_factor)
        if factor >= 1.0 or rng.random() < factor:
            if i:
                ranked.insert(0, ranked.pop(i))
            return


def rank_tiers(
    candidates: Sequence[Candidate],
    rank: Callable[[list[Candidate]], list[Candidate]],
    rng: RandomSource,
    lead: Callable[[list[Candidate], RandomSource], None] = slow_start_demote,
) -> list[Candidate]:
    """The usual shape of a ranking strategy: rank each tier, adjust the first tier's lead.

    ``candidates`` are grouped into :func:`tiers` (lowest priority number first) and each tier
    is ordered by ``rank``; right after ranking the first tier, ``lead`` may reorder it in place
    (by default :func:`slow_start_demote`: a slow-starting key keeps the front only with
    probability ``weight_factor``). Lower tiers are left as ranked: they serve only on failover.

    :param candidates: the candidates of ``select_provider``.
    :param rank: orders one tier, best first (a new list).
    :param rng: the random source (``context.random``), passed to ``lead``.
    :param lead: adjusts the first tier in place, e.g. to explore or to slow-start.
    :returns: the tiers, ranked, one after the other.
    """
    ordered: list[Candidate] = []
    for n, tier in enumerate(tiers(candidates)):
        ranked = rank(tier)
        if n == 0:
            lead(ranked, rng)
        ordered.extend(ranked)
    return ordered


def jitter(scores: Iterable[float], rng: RandomSource, resolution: float = 1.0) -> list[float]:
    """Sort keys with random ties: each score plus a random amount in ``[0, resolution)``.

    Equal scores then sort in random order; scores at least ``resolution`` apart keep their
    order. Use ``1.0`` for whole-number scores (counts), :data:`TIE_RESOLUTION` for latencies in
    seconds. One float per candidate sorts faster than a ``(score, random)`` tuple; a strategy
    whose scores mix kinds draws inline the same way (``latency + TIE_RESOLUTION * rng.random()``).

    :param scores: one score per candidate (lower sorts first).
    :param rng: the random source (``context.random``): one draw per score, in order.
    :param resolution: the width of the random amount.
    :returns: the sort keys, in the order of ``scores``.
    """
    draw = rng.random
    return [score + resolution * draw() for score in scores]


def sort_by(items: Sequence[_T], keys: Sequence[SupportsRichComparison]) -> list[_T]:
    """``items`` sorted by the parallel ``keys``, ascending; equal keys keep the items' order.

    :param items: the candidates (or anything) to order.
    :param keys: one sort key per item, in the same order.
    :returns: a new list.
    """
    return [items[i] for i in sorted(range(len(items)), key=keys.__getitem__)]


def shuffle_ties(
    candidates: Sequence[Candidate],
    scores: Iterable[float],
    rng: RandomSource,
    resolution: float = 1.0,
) -> list[Candidate]:
    """``candidates`` by ascending score, equal scores in random order.

    :param candidates: the candidates (one tier).
    :param scores: one score per candidate, in the same order; lower comes first.
    :param rng: the random source (``context.random``): one draw per candidate, in order.
    :param resolution: scores closer than this may swap (see :func:`jitter`).
    :returns: a new list.
    """
    return sort_by(candidates, jitter(scores, rng, resolution))


def key_id(candidate: Candidate) -> str:
    """The candidate's key as ``provider/name``: the same for every deployment sharing the key.

    Suitable as a key in ``context.state`` tables (see :func:`state_table`).
    """
    return f"{candidate.key.provider}/{candidate.key.name}"


def per_key(read: Callable[[Candidate], _T]) -> Callable[[Sequence[Candidate]], list[_T]]:
    """Read a per-key figure once per key for one selection.

    Several deployments may share a key, and a key's figures are the same for all of them:
    ``weight_factor``, ``requests_last_minute``, ``tokens_last_minute`` and the provider's
    remaining figures (the 60-s counters sum their buckets on every read). Make a new reader in
    each ``select_provider`` call (the figures change between requests) and call it once per tier.

    :param read: computes the figure from any candidate on the key; called once per key
        (provider, name) over every call of the returned function, in candidate order.
    :returns: a function of a sequence of candidates giving ``read``'s answer for each one's key,
        in the same order.
    """
    memo: dict[tuple[str, str], Any] = {}

    def values(candidates: Sequence[Candidate]) -> list[_T]:
        out: list[_T] = []
        for cand in candidates:
            key = cand.key
            ref = (key.provider, key.name)
            value = memo.get(ref, memo)  # the memo itself: not read yet
            if value is memo:
                value = memo[ref] = read(cand)
            out.append(value)
        return out

    return values


def _candidate_id(candidate: Candidate) -> str:
    return candidate.id


def state_table(
    state: dict[str, Any],
    name: str,
    candidates: Sequence[Candidate],
    ident: Callable[[Candidate], str] = _candidate_id,
) -> dict[str, Any]:
    """A table kept in the strategy's ``context.state`` under ``name``, made on first use.

    Entries are meant to be kept by ``ident(candidate)``: ``candidate.id`` (the default) for
    figures of a (deployment, key) pair, :func:`key_id` for figures of a key. The table survives
    candidates that leave for a while (cooldown, limits) and config reloads; once it has more
    than ``2 * len(candidates) + PRUNE_SLACK`` entries, those of candidates not present now are
    dropped (ids gone for good after reloads).

    :param state: ``context.state``.
    :param name: the table's name in it.
    :param candidates: the candidates of this selection.
    :param ident: the table's key of a candidate.
    :returns: the table (a ``dict``; anything else found under ``name`` is replaced).
    """
    table = state.get(name)
    if not isinstance(table, dict):
        table = state[name] = {}
    if len(table) > 2 * len(candidates) + PRUNE_SLACK:
        present = {ident(c) for c in candidates}
        for stale in [i for i in table if i not in present]:
            del table[stale]
    return table
