"""The after-response queue: plain-function record hooks are called at once, in order; anything
else (coroutine functions, an awaitable a plain function returns, records behind queued work) goes
through the queue and keeps the queue's order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import msgspec
import pluggy

from truckllm import hookimpl, hookspecs
from truckllm._internal.background import Background
from truckllm._internal.plugins import PluginHost
from truckllm._internal.store import Settlement
from truckllm.types import RequestRecord
from truckllm_testing.store_conformance import make_records


def host(*plugins: object) -> PluginHost:
    pm = pluggy.PluginManager("truckllm")
    pm.add_hookspecs(hookspecs)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    return PluginHost(pm=pm)


def record(rid: str) -> RequestRecord:
    return msgspec.structs.replace(make_records(n=1)[0], request_id=rid)


class Sync:
    def __init__(self, events: list[str], tag: str) -> None:
        self.events = events
        self.tag = tag

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        self.events.append(f"{self.tag} store {record.request_id}")

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.events.append(f"{self.tag} log {record.request_id}")


class Async:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    @hookimpl
    async def emit_log(self, record: RequestRecord) -> None:
        await asyncio.sleep(0)
        self.events.append(f"async log {record.request_id}")


class ReturnsAwaitable:
    """A plain function that returns an awaitable (the hookspec allows it)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @hookimpl
    def store_usage(self, record: RequestRecord) -> Awaitable[None]:
        async def later() -> None:
            await asyncio.sleep(0)
            self.events.append(f"late store {record.request_id}")

        return later()


class Broken:
    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        raise RuntimeError("down")


class SlowStore:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def settle(self, settlement: Settlement) -> None:
        await asyncio.sleep(0)
        self.events.append(f"settle {settlement.request_id}")


def test_plain_function_hooks_are_called_at_once_in_hook_order() -> None:
    events: list[str] = []
    background = Background()
    h = host(Sync(events, "a"), Sync(events, "b"))
    background.submit(h, record("r1"))
    # every store_usage before every emit_log, each in pluggy's order (the last registered first)
    assert events == ["b store r1", "a store r1", "b log r1", "a log r1"]
    assert background.queue.empty()


def test_a_failing_plain_hook_is_counted_and_silences_no_other() -> None:
    events: list[str] = []
    background = Background()
    background.submit(host(Sync(events, "a"), Broken()), record("r1"))
    assert events == ["a store r1", "a log r1"]
    assert background.plugin_errors[("p1", "emit_log")] == 1


def test_a_coroutine_function_hook_sends_records_through_the_queue() -> None:
    events: list[str] = []
    background = Background()

    async def run() -> None:
        h = host(Sync(events, "a"), Async(events))
        background.submit(h, record("r1"))
        assert events == [] and background.queue.qsize() == 1
        await background.drain()

    asyncio.run(run())
    assert events == ["a store r1", "async log r1", "a log r1"]


def test_an_awaitable_from_a_plain_hook_is_awaited_before_the_hooks_after_it() -> None:
    events: list[str] = []
    background = Background()

    async def run() -> None:
        h = host(Sync(events, "a"), ReturnsAwaitable(events))
        background.submit(h, record("r1"))
        assert events == [] and background.queue.qsize() == 1  # the rest waits for the awaitable
        background.submit(h, record("r2"))  # behind queued work: queued too
        assert background.queue.qsize() == 2
        await background.drain()

    asyncio.run(run())
    assert events == [
        "late store r1",
        "a store r1",
        "a log r1",
        "late store r2",
        "a store r2",
        "a log r2",
    ]


def test_records_wait_behind_queued_work_then_go_at_once_again() -> None:
    events: list[str] = []
    background = Background()
    h = host(Sync(events, "a"))
    store: Any = SlowStore(events)

    async def run() -> None:
        background.start()
        background.settle(store, Settlement(request_id="r0"))
        background.submit(h, record("r1"))  # the settlement is queued: so is this record
        assert events == []
        await background.drain()
        assert events == ["settle r0", "a store r1", "a log r1"]
        background.submit(h, record("r2"))  # nothing queued: at once
        assert events[-2:] == ["a store r2", "a log r2"]
        await background.stop()

    asyncio.run(run())


def test_records_with_no_hooks_queue_nothing() -> None:
    background = Background()
    background.submit(host(), record("r1"))
    assert background.queue.empty() and background.dropped == 0
