"""The background writer: records queued by ``emit_log`` written in batches, one transaction
each, by one task; nothing on the request path waits for the database.

- Batches: up to ``batch_size`` records, or what arrived within ``flush_interval``; with a
  backlog (more than ``batch_size`` queued, e.g. after an outage), up to ``BACKLOG_BATCHES``
  times ``batch_size`` per batch, back to back, so the writer catches up with a busy gateway.
- The database down (or failing): the batch is kept and retried after a jittered, capped
  exponential backoff; ``db_up`` is 0 meanwhile. An error retrying cannot fix (bad data, a bug)
  is not retried: the batch is written record by record, and only the refused ones are dropped.
- The queue full (``max_queue``): records go to the spill file when one is configured (replayed
  once the database is back), else they are dropped; the figures count both.
- Retries never count twice: the store skips request ids already stored, rows and rollups alike.
- Shutdown: what is queued is written within ``shutdown_timeout``; leftovers go to the spill file
  when configured, else they are dropped, counted and logged.
- Every hour (and at start): partitions ahead and the retention.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from loguru import logger

from truckllm.kit.tasks import stop_task
from truckllm.types import RequestRecord

from .options import SqlOptions
from .spill import SpillFile
from .store import Store, is_permanent

__all__ = ["BACKLOG_BATCHES", "MAINTENANCE_EVERY", "Writer"]

BACKLOG_BATCHES = 10
"""With a backlog, one write takes up to this many times ``batch_size`` records."""

MAINTENANCE_EVERY = 3600.0
"""Seconds between runs of the retention and the partitions-ahead job."""

_BACKOFF_BASE = 0.1
_SPILL_BUFFER = 1000  # records waiting for the spill file writer, at least


class Writer:
    """Queues records and writes them in batches from a background task.

    :param store: where records go.
    :param options: the logger's options.
    :param clock: unix time now (the retention reads it).
    :param rng: the backoff jitter's random source.
    """

    counters: ClassVar[frozenset[str]] = frozenset(
        {"written", "dropped", "spilled", "replayed", "failed_batches"}
    )
    """The figures that only grow."""

    def __init__(
        self,
        store: Store,
        options: SqlOptions,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self._clock = clock
        self._random = rng or random.Random()
        self._where = options.target.where
        self._secret = options.url.reveal()
        self._queue: deque[RequestRecord] = deque()
        self._overflow: deque[RequestRecord] = deque()
        self._spill = SpillFile(options.spill_path, options.spill_max_bytes) if options.spill_path else None
        self._wake = asyncio.Event()
        self._spill_wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False
        self._closed = False
        self._ready = False
        self._inflight: list[RequestRecord] = []
        self._filling_since = 0.0  # time.monotonic() when the queue's oldest record came
        self._task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._next_maintenance = 0.0
        self._replay_offset: int | None = None
        self._warned = False
        self._log = logger.bind(plugin="logger-sql")
        self.written = 0
        """Records stored."""
        self.dropped = 0
        """Records lost: queue and spill file full, a batch given up, or shutdown out of time."""
        self.spilled = 0
        """Records written to the spill file."""
        self.replayed = 0
        """Records read back from the spill file and stored."""
        self.failed_batches = 0
        """Batch writes that failed (each retry counts)."""
        self.db_up = 0
        """1 while the last database operation succeeded."""

    @property
    def queued(self) -> int:
        """Records waiting in memory (queue, batch in flight, overflow bound for the spill file)."""
        return len(self._queue) + len(self._inflight) + len(self._overflow)

    # --- the request path: memory only ----------------------------------------------------------

    def offer(self, record: RequestRecord) -> None:
        """Queue ``record``; never blocks, never does I/O."""
        if self._closed:
            self._drop(1, "logger stopped")
        elif len(self._queue) < self.options.max_queue:
            self._queue.append(record)
            size = len(self._queue)
            if size == 1:
                self._filling_since = time.monotonic()
                self._wake.set()
            elif size >= self.options.batch_size:
                self._wake.set()
        elif self._spill is not None and len(self._overflow) < max(self.options.max_queue, _SPILL_BUFFER):
            self._overflow.append(record)
            self._spill_wake.set()
        else:
            self._drop(1, "queue full")

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the database (a loud warning if it cannot be reached: records queue meanwhile)
        and start the writer task."""
        if self._task is not None:
            return
        try:
            await asyncio.wait_for(self._prepare(), timeout=self.options.connect_timeout * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._down(exc, "cannot reach the database at start-up; records queue until it answers")
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="truckllm-logger-sql")
        if self._spill is not None:
            self._spill_task = loop.create_task(self._spill_run(), name="truckllm-logger-sql-spill")

    async def stop(self) -> None:
        """Write what is queued within ``shutdown_timeout``; leftovers to the spill file (if
        configured) or dropped and counted."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self.options.shutdown_timeout)
            if not done:
                await stop_task(task)
        self._closed = True
        spill_task, self._spill_task = self._spill_task, None
        if spill_task is not None:
            self._spill_wake.set()
            await asyncio.wait({spill_task}, timeout=self.options.shutdown_timeout)
            await stop_task(spill_task)
        leftovers = [*self._inflight, *self._queue, *self._overflow]
        self._inflight, self._queue, self._overflow = [], deque(), deque()
        if leftovers and self._spill is not None:
            spilled = await asyncio.to_thread(self._spill.append, leftovers)
            self.spilled += spilled
            leftovers = leftovers[spilled:]
            if spilled:
                self._log.warning(
                    "sql {}: {} records not written by shutdown went to the spill file", self._where, spilled
                )
        if leftovers:
            self._drop(
                len(leftovers), f"not written within shutdown_timeout {self.options.shutdown_timeout:g}s"
            )
        await self.store.close()

    # --- the writer task --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, self._where) if self._secret else text

    def _down(self, exc: BaseException, why: str) -> None:
        was_up = self.db_up
        self.db_up = 0
        self._ready = False
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        if was_up or not self._warned:
            self._log.warning("sql {}: {} ({})", self._where, why, detail)
            self._warned = True

    def _up(self) -> None:
        if not self.db_up and self._warned:
            self._log.info("sql {}: the database answers again", self._where)
        self.db_up = 1

    def _drop(self, count: int, why: str) -> None:
        before = self.dropped
        self.dropped += count
        if before == 0 or before // 1000 != self.dropped // 1000:
            self._log.warning("sql {}: {} records dropped so far ({})", self._where, self.dropped, why)

    async def _prepare(self) -> None:
        await self.store.migrate()
        await self._maintain(force=True)
        self._ready = True
        self._up()

    async def _maintain(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now < self._next_maintenance:
            return
        self._next_maintenance = now + MAINTENANCE_EVERY
        await self.store.ensure_ahead(now)
        await self.store.retention(now, self.options.retention_days)

    async def _run(self) -> None:
        while True:
            try:
                if self._ready:
                    await self._maintain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc, "retention or partition job failed")
            if self._batch_due():
                if not await self._write(self._take()):
                    return
                continue
            if self._closing:
                return
            if await self._replay_some():
                continue
            await self._wait_for_batch()

    def _batch_due(self) -> bool:
        """Is a batch to be written now: full, its oldest record's ``flush_interval`` over, or
        shutting down?"""
        size = len(self._queue)
        return size > 0 and (
            size >= self.options.batch_size
            or self._closing
            or time.monotonic() >= self._filling_since + self.options.flush_interval
        )

    def _take(self) -> list[RequestRecord]:
        """Up to ``BACKLOG_BATCHES`` × ``batch_size`` records off the queue (usually all of it:
        one copy in C)."""
        count = min(self.options.batch_size * BACKLOG_BATCHES, len(self._queue))
        if count == len(self._queue):
            self._inflight = list(self._queue)
            self._queue.clear()
        else:
            self._inflight = [self._queue.popleft() for _ in range(count)]
            self._filling_since = time.monotonic()
        return self._inflight

    async def _wait_for_batch(self) -> None:
        """Wait for a record (at most until the next maintenance), then until the batch is
        full or ``flush_interval`` after its oldest record came."""
        while not self._queue and not self._closing:
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.01, min(60.0, self._next_maintenance - self._clock()))):
                    await self._wake.wait()
            except TimeoutError:
                return
        while len(self._queue) < self.options.batch_size and not self._closing:
            remaining = self._filling_since + self.options.flush_interval - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _write(self, batch: list[RequestRecord]) -> bool:
        """Write ``batch`` until it is stored or given up; False when shutting down with the
        database down (the batch stays in flight for :meth:`stop`)."""
        retry = 0
        while True:
            try:
                if not self._ready:
                    await self._prepare()
                self.written += await self.store.write(batch)
                self._up()
                self._inflight = []
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed_batches += 1
                if is_permanent(exc):
                    await self._write_one_by_one(batch, exc)
                    self._inflight = []
                    return True
                self._down(exc, "writing a batch failed; retrying")
            if self._closing:
                return False
            delay = min(float(self.options.max_backoff), _BACKOFF_BASE * 2 ** min(retry, 30))
            retry += 1
            try:
                async with asyncio.timeout(self._random.uniform(delay / 2, delay)):
                    await self._stop.wait()
            except TimeoutError:
                pass

    async def _write_one_by_one(self, batch: list[RequestRecord], exc: BaseException) -> None:
        """A batch the database refused for its data: write its records one at a time, so only
        the bad ones are dropped (and counted)."""
        refused = 0
        for record in batch if len(batch) > 1 else ():
            try:
                self.written += await self.store.write([record])
            except asyncio.CancelledError:
                raise
            except Exception as one:
                if not is_permanent(one):
                    self._down(one, "writing a batch failed")
                refused += 1
        refused = refused if len(batch) > 1 else 1
        self._log.opt(exception=exc).error(
            "sql {}: {} of a batch of {} records cannot be written; dropped", self._where, refused, len(batch)
        )
        self._drop(refused, "record refused by the database")

    # --- the spill file ---------------------------------------------------------------------------

    async def _spill_run(self) -> None:
        spill = self._spill
        assert spill is not None
        while True:
            self._spill_wake.clear()
            if self._overflow:
                records = list(self._overflow)
                self._overflow.clear()
                written = await asyncio.to_thread(spill.append, records)
                self.spilled += written
                if written < len(records):
                    self._drop(
                        len(records) - written, f"spill file full ({self.options.spill_max_bytes} bytes)"
                    )
                continue
            if self._closed:
                return
            await self._spill_wake.wait()

    async def _replay_some(self) -> bool:
        """Write one batch of the spill file back, when the database is up; was there one?"""
        spill = self._spill
        if spill is None or not self.db_up:
            return False
        try:
            if self._replay_offset is None:
                if not await asyncio.to_thread(spill.start_replay):
                    return False
                self._replay_offset = 0
            records, offset = await asyncio.to_thread(
                spill.read, self._replay_offset, self.options.batch_size * BACKLOG_BATCHES
            )
        except OSError as exc:
            self._log.error("sql {}: cannot read the spill file: {}", self._where, exc)
            return False
        if not records:
            await asyncio.to_thread(spill.finish_replay)
            self._replay_offset = None
            return True
        self._inflight = records
        before = self.written
        if not await self._write(records):
            self._inflight = []  # still in the replay file: replayed at the next start
            return False
        self.replayed += self.written - before
        self._replay_offset = offset
        return True
