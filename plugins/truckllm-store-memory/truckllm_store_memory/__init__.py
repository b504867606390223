"""TruckLLM store plugin ``memory``: every limit, budget, cooldown, usage total and state value in
this process.

The default store. State lives in one :class:`~truckllm.kit.localstate.LocalState` (and state
values, :class:`~truckllm.kit.store.StateStore`, in one :class:`StateValues`) and is lost when the
process exits; several workers each keep their own (use the ``redis`` store to share).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from truckllm import hookimpl
from truckllm.kit.localstate import Clock, LocalState, LocalStore, check_retention
from truckllm.kit.options import Duration
from truckllm.kit.store import DEFAULT_USAGE_RETENTION
from truckllm.types import RequestRecord
from truckllm_store_memory.values import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, StateValues

__all__ = ["TRUCKLLM_API", "MemoryStore", "StateValues", "register_stores"]

TRUCKLLM_API = 1


class MemoryStore(LocalStore):
    """``type: memory``: the store algorithms on in-process state; no I/O, nothing to flush.

    :param options: the ``store:`` section.
    :param clock: unix time (tests inject a fake clock); state values expire by it too.
    :param state: share an existing state (tests use it to reopen the "same" store).
    :param values: share existing state values (likewise).
    """

    name = "memory"

    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        """``store:`` options of ``type: memory``.

        :ivar usage_retention: how long a UTC day's usage is kept (older days are dropped).
        :ivar max_state_items: state values kept at most (the least recently used go first).
        :ivar max_state_bytes: bytes of state values kept at most (likewise).
        """

        usage_retention: Duration = Duration(DEFAULT_USAGE_RETENTION)
        max_state_items: int = DEFAULT_MAX_ITEMS
        max_state_bytes: int = DEFAULT_MAX_BYTES

        def __post_init__(self) -> None:
            check_retention(self.usage_retention)
            for name in ("max_state_items", "max_state_bytes"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be a positive number, not {getattr(self, name)}")

    def __init__(
        self,
        options: MemoryStore.Options | None = None,
        *,
        clock: Clock = time.time,
        state: LocalState | None = None,
        values: StateValues | None = None,
    ) -> None:
        self.options = options or MemoryStore.Options()
        super().__init__(clock, state, usage_retention=self.options.usage_retention)
        if values is None:
            o = self.options
            values = StateValues(clock, max_items=o.max_state_items, max_bytes=o.max_state_bytes)
        self.values = values

    async def get_state(self, name: str) -> bytes | None:
        """The value stored under ``name``, or ``None`` when absent or expired."""
        return self.values.get(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds (at least 1 ms), replacing any; beyond
        ``max_state_items`` or ``max_state_bytes`` the least recently used values are dropped.

        :raises ValueError: ``ttl`` is not a finite number.
        """
        self.values.put(name, value, ttl)

    async def delete_state(self, name: str) -> bool:
        """Remove ``name``; ``True`` when an unexpired value was removed."""
        return self.values.delete(name)

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Count a finished request (synchronous, in memory)."""
        self.record(record)


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: memory``."""
    register("memory", MemoryStore)
