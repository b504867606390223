"""State values in process memory: bytes under a name, each with its own expiry.

Time is the store's injected clock. An expired value is dropped when it is read, and each put
drops at most :data:`SWEEP_BATCH` values that have expired (earliest expiry first), so values
that nobody reads again cannot pile up while puts continue.
"""

from __future__ import annotations

import heapq
import math

from truckllm.kit.localstate import Clock

__all__ = ["MIN_TTL", "SWEEP_BATCH", "StateValues", "check_ttl"]

MIN_TTL = 0.001
"""The shortest time to live (seconds): a ``ttl`` at or below 0 keeps the value this long."""

SWEEP_BATCH = 64
"""Expired values dropped at most by one put."""


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
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._values: dict[str, tuple[float, bytes]] = {}  # name -> (expires at, value)
        self._expiries: list[tuple[float, str]] = []  # a heap; entries of replaced values are stale

    def __len__(self) -> int:
        """Values held, expired ones not swept yet included."""
        return len(self._values)

    def get(self, name: str) -> bytes | None:
        """The value of ``name``, or ``None`` when absent or expired (an expired one is dropped)."""
        entry = self._values.get(name)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._values[name]
            return None
        return entry[1]

    def put(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds, replacing any.

        :raises ValueError: ``ttl`` is not a finite number.
        """
        ttl = check_ttl(ttl)
        now = self.clock()
        expires = now + ttl
        self._values[name] = (expires, bytes(value))
        heapq.heappush(self._expiries, (expires, name))
        self._sweep(now)

    def delete(self, name: str) -> bool:
        """Drop ``name``; ``True`` when an unexpired value was dropped."""
        entry = self._values.pop(name, None)
        return entry is not None and entry[0] > self.clock()

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                break
            expires, name = heapq.heappop(heap)
            entry = self._values.get(name)
            if entry is not None and entry[0] == expires:
                del self._values[name]
        if len(heap) > 2 * len(self._values) + SWEEP_BATCH:  # mostly stale entries: rebuild
            self._expiries = [(expires, name) for name, (expires, _) in self._values.items()]
            heapq.heapify(self._expiries)
