"""Work done after the response: ``store_usage`` and ``emit_log``, off the hot path.

A bounded queue and one worker task. Every implementation of each hook is awaited on its own,
so one failing or slow plugin silences no other; failures are logged with ``plugin=`` and
counted. On shutdown the queue is drained before the gateway exits.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
from loguru import logger

from truckllm._internal.bodies import BodyCapture
from truckllm._internal.plugins import PluginHost
from truckllm._internal.scrub import Scrubber
from truckllm._internal.store import Settlement, Store
from truckllm._internal.tasks import stop_task
from truckllm.types import RequestRecord

__all__ = ["Background", "PendingRecord", "call_each"]


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A record whose bodies are made off the request path, just before the hooks see it."""

    record: RequestRecord
    capture: BodyCapture
    scrubber: Scrubber

    def complete(self) -> RequestRecord:
        """The record with its bodies (scrubbed, cut); without them if making them fails."""
        try:
            return msgspec.structs.replace(self.record, bodies=self.capture.bodies(self.scrubber))
        except Exception:
            rid = self.record.request_id
            logger.opt(exception=True).error("request {}: its bodies were not recorded", rid)
            return self.record


async def call_each(host: PluginHost, hook_name: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
    """Call every implementation of ``hook_name`` separately, awaiting awaitables; return failures."""
    failures: list[tuple[str, BaseException]] = []
    for name, function, argnames in host.dispatch.each(hook_name):
        try:
            result = function(*[kwargs[k] for k in argnames])
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception as exc:
            failures.append((name, exc))
            logger.bind(plugin=name).opt(exception=exc).error("plugin {} failed in {}", name, hook_name)
    return failures


class Background:
    """The after-response queue of request records."""

    def __init__(self, maxsize: int = 10000) -> None:
        self.queue: asyncio.Queue[
            tuple[PluginHost, RequestRecord | PendingRecord] | tuple[Store, Settlement]
        ] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.plugin_errors: Counter[tuple[str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="truckllm-background")

    def submit(self, host: PluginHost, record: RequestRecord | PendingRecord) -> None:
        """Queue one record; never blocks (a full queue drops and counts)."""
        try:
            self.queue.put_nowait((host, record))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("after-response queue full: {} records dropped", self.dropped)

    def settle(self, store: Store, settlement: Settlement) -> None:
        """Queue a store settlement (applied off the response path, before the next records)."""
        try:
            self.queue.put_nowait((store, settlement))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _handle(self, target: Any, item: RequestRecord | PendingRecord | Settlement) -> None:
        if isinstance(item, Settlement):
            try:
                await target.settle(item)
            except Exception as exc:
                self.plugin_errors[("store", "settle")] += 1
                logger.bind(plugin="store").error("store settle failed: {}", exc)
            return
        host = target
        record = item.complete() if isinstance(item, PendingRecord) else item
        for hook_name in ("store_usage", "emit_log"):
            for name, _exc in await call_each(host, hook_name, record=record):
                self.plugin_errors[(name, hook_name)] += 1

    async def _run(self) -> None:
        queue = self.queue
        while True:
            host, record = await queue.get()
            while True:  # then whatever else is queued, without waiting again
                try:
                    await self._handle(host, record)
                finally:
                    queue.task_done()
                if queue.empty():
                    break
                host, record = queue.get_nowait()

    async def drain(self, limit: float = 10.0) -> None:
        """Wait until every queued record is handled (at most ``timeout`` seconds)."""
        if self._task is None:
            while not self.queue.empty():
                host, record = self.queue.get_nowait()
                await self._handle(host, record)
            return
        try:
            async with asyncio.timeout(limit):
                await self.queue.join()
        except TimeoutError:
            logger.error("after-response queue not drained in {}s: {} left", limit, self.queue.qsize())

    async def stop(self, limit: float = 10.0) -> None:
        """Drain, then stop the worker."""
        await self.drain(limit)
        task, self._task = self._task, None
        await stop_task(task)
