"""TruckLLM store plugin ``memory``: every limit, budget, cooldown and usage total in this process.

The default store. State lives in one :class:`~truckllm.localstate.LocalState` and is lost when
the process exits; several workers each keep their own (use the ``redis`` store to share).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from truckllm import hookimpl
from truckllm.localstate import Clock, LocalState, LocalStore
from truckllm.types import RequestRecord

__all__ = ["TRUCKLLM_API", "MemoryStore", "register_stores"]

TRUCKLLM_API = 1


class MemoryStore(LocalStore):
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
        super().__init__(clock, state)
        self.options = options or MemoryStore.Options()

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Count a finished request (synchronous, in memory)."""
        self.record(record)


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: memory``."""
    register("memory", MemoryStore)
