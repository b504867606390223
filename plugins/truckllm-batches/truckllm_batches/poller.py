"""The background poller: every open batch is asked about until it finishes, and its usage is
recorded then, even if no client ever retrieves it.

One :class:`Poller` per gateway, owned by the ``batches`` component (:mod:`.component`, started by
its ``startup``, stopped by its ``shutdown``), visits the registry (:mod:`.registry`) every
``poll_interval``. A batch is asked about (``batches.retrieve`` as the gateway key that created it,
to the provider key that holds it, as the gateway's own work: ``GatewayView.local_call``, never
refused by the key's limits or budget) when its backoff has passed since it was last asked by any
worker or replica (``BatchRecord.polled_at``, shared through the store): ``poll_interval`` ×
2^polls, at most ``poll_max``. When the answer shows it finished, the usage is recorded through
the batch's bill token exactly as on a client's retrieve: once, whoever sees it first. Two
pollers asking about one batch at the same moment cost one extra retrieve, never a second charge.

What a poller has read of the registry is kept in the poller (per day: how far it has read, and
the entries still open), so that a round reads only new slots and open batches' records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
from loguru import logger

from truckllm.kit.dialect import DialectState, LocalCall

from . import registry
from .batches import BILLED, FINAL, refresh
from .files import NAME
from .records import load_batch, save_batch

__all__ = ["PollSettings", "Poller"]


class _View(Protocol):
    """What the poller needs of the gateway (``GatewayView``)."""

    @property
    def draining(self) -> bool: ...

    def local_call(self, dialect: str, key: str | None) -> LocalCall: ...


class PollSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How often the poller runs.

    :ivar interval: seconds between visits of the registry, and the first backoff (0: off).
    :ivar most: the longest backoff between two questions about one batch.
    """

    interval: float = 60.0
    most: float = 900.0


class _Day:
    """What this poller knows of one day's slots: every slot below :attr:`read` was read, and
    :attr:`open` holds those whose batch may still need a question."""

    __slots__ = ("open", "read", "settled")

    def __init__(self, settled: int) -> None:
        self.read = settled
        self.settled = settled  # the shared hint as last written or read
        self.open: dict[int, registry.Entry] = {}


class Poller:
    """One gateway's poller (see the module's doc)."""

    def __init__(
        self,
        view: _View,
        settings: PollSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.settings = settings
        self.clock = clock
        self.visits = 0  # questions asked (for tests and logs)
        self._days: dict[int, _Day] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """The task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task (no-op when the interval is 0)."""
        if self.settings.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="truckllm-batches-poller")

    async def stop(self) -> None:
        """Stop the task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self.view.draining:
            try:
                await self.poll_once()
            except Exception as exc:  # a store outage: try again next time
                logger.opt(exception=exc).warning("the batch poller failed a round")
            await asyncio.sleep(self.settings.interval)

    def _due(self, polled_at: float, polls: int, now: float) -> bool:
        wait: float = min(self.settings.interval * float(2 ** min(polls, 30)), self.settings.most)
        return now >= polled_at + wait

    async def _visit(self, entry: registry.Entry, now: float) -> bool:
        """Ask about one batch if it is due; ``True`` when it needs no more visits."""
        key, batch_id = entry
        try:
            call = self.view.local_call(NAME, key)
        except LookupError:
            return True  # the key is gone: its batches are not polled (a client cannot retrieve them either)
        record = await load_batch(call.state, batch_id)
        if record is None or record.billed:
            return True
        status = record.object.get("status")
        if status in FINAL and (status not in BILLED or not record.object.get("output_file_id")):
            return True
        if not self._due(record.polled_at, record.polls, now):
            return False
        record = msgspec.structs.replace(record, polled_at=now, polls=record.polls + 1)
        save_batch(call.state, batch_id, record)
        await call.state.flush()  # other pollers see it asked before the answer comes
        self.visits += 1
        try:
            await refresh(call, batch_id, record, "batches.retrieve")
        except Exception as exc:
            logger.warning("the batch poller could not ask about batch {}: {}", batch_id, exc)
            return False
        finally:
            await call.state.flush()
        done = await load_batch(call.state, batch_id)
        return done is None or done.billed or bool(done.object.get("status") in FINAL - BILLED)

    async def _read_new(self, shared: DialectState, number: int, day: _Day) -> None:
        """Read the slots taken since the last round (past empty ones below the ``next`` hint:
        a slot lost from a bounded in-memory state leaves a hole)."""
        nxt = await registry.next_hint(shared, number)
        while day.read < registry.MAX_SLOTS:
            found = await registry.read_slot(shared, number, day.read)
            if found is False and day.read >= nxt:
                return
            if isinstance(found, tuple):
                day.open[day.read] = found
            day.read += 1

    async def _poll_day(self, shared: DialectState, number: int, now: float) -> None:
        day = self._days.get(number)
        if day is None:
            day = self._days[number] = _Day(await registry.read_hint(shared, number, "settled"))
        await self._read_new(shared, number, day)
        for slot in sorted(day.open):
            if await self._visit(day.open[slot], now):
                del day.open[slot]
        settled = min(day.open, default=day.read)
        if settled > day.settled:
            if settled > await registry.read_hint(shared, number, "settled"):
                registry.write_hint(shared, number, "settled", settled)
                await shared.flush()
            day.settled = settled

    async def poll_once(self) -> int:
        """Visit every registered batch once; returns how many were asked about."""
        before = self.visits
        now = self.clock()
        today = registry.day_of(now)
        shared = self.view.local_call(NAME, None).shared
        if shared is None:
            return 0
        days = range(today, today - registry.KEEP_DAYS, -1)
        for number in [d for d in self._days if d not in days]:
            del self._days[number]  # expired
        for number in days:
            await self._poll_day(shared, number, now)
        return self.visits - before
