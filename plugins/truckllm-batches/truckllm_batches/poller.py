"""The background poller: every open batch is asked about until it finishes, and its usage is
recorded then, even if no client ever retrieves it.

One task per gateway (started by the ``startup`` hook, stopped by ``shutdown``) visits the
registry (:mod:`.registry`) every :attr:`PollSettings.interval` seconds. A batch is asked about
(``batches.retrieve`` as the gateway key that created it, to the provider key that holds it)
when its backoff has passed since it was last asked by any worker or replica
(``BatchRecord.polled_at``, shared through the store): ``interval`` × 2^polls, at most
:attr:`PollSettings.most`. When the answer shows it finished, the usage is recorded through the
batch's bill token exactly as on a client's retrieve: once, whoever sees it first. Two pollers
asking about one batch at the same moment cost one extra retrieve, never a second charge.

Settings (environment, read at startup): ``TRUCKLLM_BATCHES_POLL_INTERVAL`` (seconds, default
60; ``0`` turns the poller off), ``TRUCKLLM_BATCHES_POLL_MAX`` (the longest backoff, default 900).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec
from loguru import logger

from truckllm.kit.dialect import LocalCall

from . import registry
from .batches import BILLED, FINAL, refresh
from .files import NAME
from .records import load_batch, save_batch

__all__ = ["PollSettings", "Poller", "poller_for", "settings_from"]


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


def _seconds(raw: str | None, default: float) -> float:
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        logger.warning("ignoring a batch poller setting that is not a number: {!r}", raw[:40] if raw else raw)
        return default
    return value if math.isfinite(value) and value >= 0 else default


def settings_from(env: Mapping[str, str]) -> PollSettings:
    """The settings ``env`` gives (bad values: the defaults, logged)."""
    interval = _seconds(env.get("TRUCKLLM_BATCHES_POLL_INTERVAL"), 60.0)
    return PollSettings(
        interval=interval, most=max(_seconds(env.get("TRUCKLLM_BATCHES_POLL_MAX"), 900.0), interval)
    )


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
        self._done: set[registry.Entry] = set()  # known finished: never read again by this process
        self._task: asyncio.Task[None] | None = None

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

    async def poll_once(self) -> int:
        """Visit every registered batch once; returns how many were asked about."""
        before = self.visits
        now = self.clock()
        today = registry.day_of(now)
        shared = self.view.local_call(NAME, None).shared
        if shared is None:
            return 0
        for day in range(today, today - registry.KEEP_DAYS, -1):
            for shard in range(registry.SHARDS):
                entries = await registry.load(shared, day, shard)
                keep: list[registry.Entry] = []
                for entry in entries:
                    if entry in self._done:
                        continue
                    if await self._visit(entry, now):
                        self._done.add(entry)
                    else:
                        keep.append(entry)
                if today - day > registry.SETTLE_DAYS and len(keep) < len(entries):
                    await registry.save(shared, day, shard, keep)  # no one adds to that day's lists now
        return self.visits - before


def poller_for(view: Any, env: Mapping[str, str] | None = None) -> Poller:
    """A poller for ``view`` with the settings of ``env`` (the process environment by default)."""
    return Poller(view, settings_from(os.environ if env is None else env))
