"""TruckLLM strategy plugin ``header``: the client names the provider or key it prefers.

``x-truckllm-prefer: <name>[, <name>...]`` on a request moves the alias's candidates matching the
first name to the front, then those matching the second, and so on; the others follow in config
order. A name matches a candidate's provider (``openai``), its key (``oa-main``) or both
(``openai/oa-main``). Without the header, or when nothing matches, candidates stay in config
order. The header only reorders: a client cannot reach a provider the alias does not list, nor a
key that is cooling down, and failover still moves on to the next candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm.types import Candidate, SelectionContext, StrategySpec

__all__ = [
    "HEADER",
    "MAX_NAMES",
    "NAME",
    "TRUCKLLM_API",
    "preferences",
    "register_strategies",
    "select_provider",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

NAME = "header"
"""The strategy name, as written in ``models.<alias>.strategy``."""

HEADER = "x-truckllm-prefer"
"""The request header read (header names reach strategies in lower case)."""

MAX_NAMES = 8
"""Names read from the header at most; the rest are ignored."""


def preferences(value: str | None) -> list[str]:
    """The names in a header value, in order: comma-separated, blanks dropped, at most ``MAX_NAMES``."""
    if not value:
        return []
    names = [part.strip() for part in value[:1024].split(",")]
    return [name for name in names if name][:MAX_NAMES]


def _matches(candidate: Candidate, name: str) -> bool:
    provider, key = candidate.provider.name, candidate.key.name
    return name in (provider, key, f"{provider}/{key}")


@hookimpl
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Offer the ``header`` strategy."""
    register(StrategySpec(name=NAME, description=f"the client's {HEADER} header first, then config order"))


@hookimpl
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Candidates matching the header's names first, in the header's order; ``None`` if not ``header``."""
    if strategy != NAME:
        return None
    wanted = preferences(context.headers.get(HEADER))
    if not wanted:
        return list(candidates)

    def rank(candidate: Candidate) -> int:
        return next((i for i, name in enumerate(wanted) if _matches(candidate, name)), len(wanted))

    return sorted(candidates, key=rank)  # stable: config order within one rank
