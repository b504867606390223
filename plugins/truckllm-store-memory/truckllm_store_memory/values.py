"""State values in process memory: bytes under a name, each with its own expiry, within bounds.

Time is the store's injected clock. An expired value is dropped when it is read, and each put
drops at most :data:`SWEEP_BATCH` values that have expired (earliest expiry first), so values
that nobody reads again cannot pile up while puts continue. Beyond ``max_items`` values or
``max_bytes`` bytes, the least recently used (read or put) are dropped.
"""

from __future__ import annotations

import heapq
import math

from loguru import logger

from truckllm.kit.localstate import Clock

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ITEMS", "MIN_TTL", "SWEEP_BATCH", "StateValues", "check_ttl"]

MIN_TTL = 0.001
"""The shortest time to live (seconds): a ``ttl`` at or below 0 keeps the value this long."""

SWEEP_BATCH = 64
"""Expired values dropped at most by one put."""

DEFAULT_MAX_ITEMS = 10_000
"""Values kept at most by default (the kernel's own in-process fallback keeps as many)."""

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""Bytes of values kept at most by default."""

_log = logger.bind(plugin="store-memory")


def check_ttl(ttl: float) -> float:
    """``ttl`` in seconds, at least :data:`MIN_TTL`.

    :raises ValueError: ``ttl`` is not a finite number.
    """
    if not math.isfinite(ttl):
        raise ValueError(f"state ttl must be a finite number of seconds, not {ttl!r}")
    return max(float(ttl), MIN_TTL)


class StateValues:
    """Opaque values with a time to live, in this process (the memory store's ``*_state``).

    :param clock: unix time in seconds (the store's clock).
    :param max_items: values kept at most (the least recently used go first).
    :param max_bytes: bytes of values kept at most (likewise; a larger value is not kept).
    """

    def __init__(
        self, clock: Clock, *, max_items: int = DEFAULT_MAX_ITEMS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.clock = clock
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size = 0
        """Bytes of the values held."""
        self.evicted = 0
        """Unexpired values dropped to stay within the bounds."""
        self._values: dict[str, tuple[float, bytes]] = {}  # name -> (expires at, value); LRU first
        self._expiries: list[tuple[float, str]] = []  # a heap; entries of replaced values are stale

    def __len__(self) -> int:
        """Values held, expired ones not swept yet included."""
        return len(self._values)

    def get(self, name: str) -> bytes | None:
        """The value of ``name``, or ``None`` when absent or expired (an expired one is dropped)."""
        entry = self._drop(name)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            return None
        self._values[name] = entry  # now the most recently used
        self.size += len(entry[1])
        return entry[1]

    def put(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds, replacing any.

        :raises ValueError: ``ttl`` is not a finite number.
        """
        ttl = check_ttl(ttl)
        value = bytes(value)
        now = self.clock()
        self._drop(name)
        if len(value) > self.max_bytes:
            _log.warning("a state value of {} bytes is over max_state_bytes: not kept", len(value))
            return
        expires = now + ttl
        self._values[name] = (expires, value)
        self.size += len(value)
        heapq.heappush(self._expiries, (expires, name))
        self._sweep(now)
        while len(self._values) > self.max_items or self.size > self.max_bytes:
            self._drop(next(iter(self._values)))
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                _log.warning("state values over their bounds: {} dropped unexpired so far", self.evicted)

    def delete(self, name: str) -> bool:
        """Drop ``name``; ``True`` when an unexpired value was dropped."""
        entry = self._drop(name)
        return entry is not None and entry[0] > self.clock()

    def _drop(self, name: str) -> tuple[float, bytes] | None:
        entry = self._values.pop(name, None)
        if entry is not None:
            self.size -= len(entry[1])
        return entry

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                break
            expires, name = heapq.heappop(heap)
            entry = self._values.get(name)
            if entry is not None and entry[0] == expires:
                self._drop(name)
        if len(heap) > 2 * len(self._values) + SWEEP_BATCH:  # mostly stale entries: rebuild
            self._expiries = [(expires, name) for name, (expires, _) in self._values.items()]
            heapq.heapify(self._expiries)
