"""A virtual clock for concurrent, deterministic simulations of the gateway.

Every task sleeps on :meth:`VirtualTime.sleep`; :meth:`VirtualTime.run` lets all ready tasks
run until every one of them waits, then moves the clock to the earliest wake-up. Nothing waits
for real time, and with a seeded random source a run is the same every time.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Iterable


class VirtualTime:
    """A clock (call it for the time) and a sleep that advance together, under :meth:`run`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._heap, (self.now + max(seconds, 0.0), self._seq, future))
        await future

    @staticmethod
    async def _settle() -> None:
        """Return once every other task is waiting (the loop's ready queue is empty)."""
        loop = asyncio.get_running_loop()
        for _ in range(100_000):
            await asyncio.sleep(0)
            if not loop._ready:  # type: ignore[attr-defined]
                return
        raise RuntimeError("tasks never settled")

    async def run(self, work: Iterable[Awaitable[object]]) -> list[object]:
        """Run ``work`` to its end on virtual time; the results, in order."""
        tasks = [asyncio.ensure_future(w) for w in work]
        while True:
            await self._settle()
            if all(t.done() for t in tasks):
                return [t.result() for t in tasks]
            while self._heap and self._heap[0][2].cancelled():
                heapq.heappop(self._heap)
            if not self._heap:
                raise RuntimeError("deadlock: tasks wait for something other than virtual time")
            at, _, future = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            future.set_result(None)
