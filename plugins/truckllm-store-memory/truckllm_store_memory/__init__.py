"""TruckLLM store plugin ``memory``: every limit, budget, cooldown and usage total in this process.

The default store. State lives in one :class:`~truckllm.localstate.LocalState` and is lost when
the process exits; several workers each keep their own (use the ``redis`` store to share).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from truckllm import hookimpl
from truckllm.localstate import Clock, LocalState
from truckllm.store import (
    Admission,
    CooldownMark,
    Decision,
    Settlement,
    UsageQuery,
    UsageReport,
)
from truckllm.types import RequestRecord

__all__ = ["TRUCKLLM_API", "MemoryStore", "register_stores"]

TRUCKLLM_API = 1


class MemoryStore:
    """``type: memory``: the store algorithms on in-process state; no I/O, nothing to flush.

    :param options: no options.
    :param clock: unix time (tests inject a fake clock).
    :param state: share an existing state (tests use it to reopen the "same" store).
    """

    name = "memory"

    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        """The memory store takes no options."""

    def __init__(
        self,
        options: MemoryStore.Options | None = None,
        *,
        clock: Clock = time.time,
        state: LocalState | None = None,
    ) -> None:
        self.options = options or MemoryStore.Options()
        self.state = state if state is not None else LocalState(clock)

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to flush (the state stays readable)."""

    async def flush(self) -> None:
        """Nothing is ever pending."""

    async def admit(self, admission: Admission) -> Decision:
        """Check and consume every rate limit and budget of one request, atomically."""
        return self.state.admit(admission)

    async def settle(self, settlement: Settlement) -> None:
        """Apply a request's corrections at once."""
        self.state.settle(settlement)

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        """Record a cooldown (extends, never shortens)."""
        self.state.mark_cooldown(mark)

    async def cooldowns(self) -> Sequence[CooldownMark]:
        """Every cooldown still in force."""
        return self.state.cooldowns()

    async def usage(self, query: UsageQuery) -> UsageReport:
        """Aggregated usage."""
        return self.state.usage(query)

    async def ready(self) -> dict[str, Any]:
        """Always ready."""
        return {"ok": True, "store": self.name}

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Count a finished request (synchronous, in memory)."""
        self.state.record(record)


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: memory``."""
    register("memory", MemoryStore)
