"""Work done after the response: ``store_usage`` and ``emit_log``, off the hot path.

A bounded queue and one worker task. Every implementation of each hook is awaited on its own,
so one failing or slow plugin silences no other; failures are logged with ``plugin=`` and
counted. On shutdown the queue is drained before the gateway exits.

When every implementation of both hooks is a plain function (the built-in stores and loggers
are) and nothing is queued or being handled, a finished request's record is handed to them at
once, in the same order, by :meth:`Background.submit`: the answer has been sent by then, and a
queue item and a task switch per request would only add work. Should one of them return an
awaitable after all, the worker awaits it and then calls the implementations after it, so the
order stays that of the queue. Records with bodies to make, and settlements, always go through
the queue.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import msgspec
from loguru import logger

from truckllm._internal.bodies import BodyCapture
from truckllm._internal.dispatch import Impl
from truckllm._internal.plugins import PluginHost
from truckllm._internal.scrub import Scrubber
from truckllm._internal.store import Settlement, Store
from truckllm._internal.tasks import stop_task
from truckllm.types import RequestRecord

__all__ = ["Background", "PendingRecord", "call_each"]

RECORD_HOOKS = ("store_usage", "emit_log")
"""The hooks every finished request's record is given to, in this order."""

Hooks = tuple[tuple[str, Impl], ...]
"""``(hook name, implementation)`` pairs, in the order they are called."""


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


@dataclass(frozen=True, slots=True)
class _Resume:
    """A record whose inline hooks met an awaitable: the worker awaits it, then calls the rest."""

    record: RequestRecord
    awaitable: Awaitable[object]
    hook: str
    plugin: str
    rest: Hooks


_Item = tuple[PluginHost, RequestRecord | PendingRecord] | tuple[Store, Settlement] | tuple[None, _Resume]
"""One queued piece of work: a record for a host's hooks, a settlement for a store, or a resume."""


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
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.plugin_errors: Counter[tuple[str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._unhandled = 0  # items queued and not yet handled (inline calls wait for none)
        # the record hooks' implementations as last read from a dispatcher, and whether every
        # one may be called inline (a plain function): read again whenever the dispatcher's change
        self._hooks: tuple[tuple[Impl, ...], tuple[Impl, ...], Hooks | None] = ((), (), ())

    def start(self) -> None:
        """Start the worker (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="truckllm-background")

    def submit(self, host: PluginHost, record: RequestRecord | PendingRecord) -> None:
        """Hand one record to the record hooks: at once when they are all plain functions and
        nothing is queued (see the module's doc), else queue it; never blocks (a full queue drops
        and counts)."""
        if not self._unhandled and type(record) is RequestRecord:
            usage, logs = host.dispatch.each("store_usage"), host.dispatch.each("emit_log")
            known = self._hooks
            hooks = known[2] if known[0] is usage and known[1] is logs else self._inline_hooks(usage, logs)
            if hooks is not None:
                for i, (hook_name, (name, function, argnames)) in enumerate(hooks):
                    try:
                        result = function(record) if argnames else function()
                    except Exception as exc:
                        self._failed(name, hook_name, exc)
                        continue
                    if result is not None and inspect.isawaitable(result):  # the rest after it
                        self._put((None, _Resume(record, result, hook_name, name, hooks[i + 1 :])))
                        return
                return
        self._put((host, record))

    def settle(self, store: Store, settlement: Settlement) -> None:
        """Queue a store settlement (applied off the response path, before the next records)."""
        self._put((store, settlement))

    def _put(self, item: _Item) -> None:
        """Queue one item; a full queue drops it and counts (a dropped record warns, now and then)."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if not isinstance(item[1], Settlement) and (self.dropped == 1 or self.dropped % 1000 == 0):
                logger.warning("after-response queue full: {} records dropped", self.dropped)
            return
        self._unhandled += 1

    def _inline_hooks(self, usage: tuple[Impl, ...], logs: tuple[Impl, ...]) -> Hooks | None:
        """The record hooks' implementations (``store_usage``'s, ``emit_log``'s) in call order
        when every one is a plain function (``None``: one is a coroutine function, so records go
        through the queue); kept until the dispatcher's change."""
        hooks = tuple(("store_usage", impl) for impl in usage) + tuple(("emit_log", impl) for impl in logs)
        plain = not any(inspect.iscoroutinefunction(function) for _, (_, function, _) in hooks)
        self._hooks = (usage, logs, hooks if plain else None)
        return hooks if plain else None

    def _failed(self, name: str, hook_name: str, exc: BaseException) -> None:
        """Log and count one implementation's failure (as :func:`call_each` does)."""
        logger.bind(plugin=name).opt(exception=exc).error("plugin {} failed in {}", name, hook_name)
        self.plugin_errors[(name, hook_name)] += 1

    async def _resume(self, item: _Resume) -> None:
        """Await what an inline hook returned, then call (and await) the hooks after it."""
        try:
            await item.awaitable
        except Exception as exc:
            self._failed(item.plugin, item.hook, exc)
        for hook_name, (name, function, argnames) in item.rest:
            try:
                result = function(item.record) if argnames else function()
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._failed(name, hook_name, exc)

    async def _handle(self, target: Any, item: RequestRecord | PendingRecord | Settlement | _Resume) -> None:
        try:
            await self._handle_one(target, item)
        finally:
            self._unhandled -= 1

    async def _handle_one(
        self, target: Any, item: RequestRecord | PendingRecord | Settlement | _Resume
    ) -> None:
        if isinstance(item, Settlement):
            try:
                await target.settle(item)
            except Exception as exc:
                self.plugin_errors[("store", "settle")] += 1
                logger.bind(plugin="store").error("store settle failed: {}", exc)
            return
        if isinstance(item, _Resume):
            await self._resume(item)
            return
        host = target
        record = item.complete() if isinstance(item, PendingRecord) else item
        for hook_name in RECORD_HOOKS:
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
