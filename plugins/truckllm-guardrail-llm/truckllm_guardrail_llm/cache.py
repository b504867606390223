"""A small in-process LRU of verdicts with a time to live."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from truckllm.types import Verdict

__all__ = ["VerdictCache"]


class VerdictCache:
    """At most ``size`` verdicts, each kept ``ttl`` seconds; the least recently used goes first.

    :param size: the most entries (``0``: nothing is kept).
    :param ttl: seconds an entry lives (``0``: nothing is kept).
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self._size = size if ttl > 0 else 0
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Verdict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Verdict | None:
        """The live verdict under ``key``, or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, verdict = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: bytes, verdict: Verdict) -> None:
        """Keep ``verdict`` under ``key`` (dropping the least recently used beyond ``size``)."""
        if self._size <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
