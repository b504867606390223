"""The kernel's own fallback hook implementations, called after every plugin (``trylast``).

The ``first`` strategy tries candidates in config order (deployments, then keys). It is what an
alias uses when it names no strategy and no ``weighted`` strategy plugin is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from truckllm.hookspecs import hookimpl
from truckllm.types import Candidate, SelectionContext, StrategySpec


@hookimpl(trylast=True)
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Register the kernel's ``first`` strategy."""
    register(StrategySpec(name="first", description="candidates in config order"))


@hookimpl(trylast=True)
def register_dialects(register: Callable[[object], None]) -> None:
    """Register the kernel's OpenAI dialect (the canonical front door)."""
    from truckllm._internal.openai_api import OPENAI

    register(OPENAI)


@hookimpl(trylast=True)
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """``first``: candidates in config order."""
    if strategy != "first":
        return None
    return list(candidates)
