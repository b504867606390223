"""The memory store passes the store conformance suite (with a fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from truckllm_store_memory import MemoryStore

from truckllm._internal.config.loader import decode_options
from truckllm._internal.store import Admission, RateCheck, StateStore
from truckllm_testing.store_conformance import FakeClock, StoreConformance, StoreHarness


class TestMemoryStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = MemoryStore(MemoryStore.Options(), clock=clock)
        await store.start()

        async def reopen() -> MemoryStore:
            return MemoryStore(MemoryStore.Options(), clock=clock, state=store.state, values=store.values)

        harness = StoreHarness(store, clock=clock, reopen=reopen)
        yield harness
        await harness.store.close()


async def test_each_instance_has_its_own_state() -> None:
    one, two = MemoryStore(), MemoryStore()
    check = RateCheck(key="k", rate=1)
    assert (await one.admit(Admission(request_id="a", rates=(check,)))).allowed
    assert (await two.admit(Admission(request_id="b", rates=(check,)))).allowed
    assert await one.ready() == {"ok": True, "store": "memory"}


async def test_state_values_are_per_instance_and_a_state_store() -> None:
    one, two = MemoryStore(), MemoryStore()
    assert isinstance(one, StateStore)
    await one.put_state("n", b"v", 60)
    assert await one.get_state("n") == b"v"
    assert await two.get_state("n") is None


async def test_expired_values_are_swept_by_puts_without_reads() -> None:
    """Values nobody reads again do not pile up: puts drop the expired ones (a bounded number each),
    whatever their time to live, and replaced values leave no stale bookkeeping behind."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for i in range(1000):
        await store.put_state(f"old-{i}", b"x" * 100, 10.0 + i % 7)
    await store.put_state("long", b"kept", 10_000.0)
    assert len(store.values) == 1001
    clock.advance(60)
    for i in range(40):
        await store.put_state(f"new-{i}", b"y", 3600.0)
    assert len(store.values) == 41  # 40 puts x 64 swept each covers the 1000 expired
    assert await store.get_state("long") == b"kept"
    for _ in range(5000):  # the same name replaced over and over
        await store.put_state("hot", b"z", 3600.0)
    assert len(store.values._expiries) <= 2 * len(store.values) + 64


async def test_an_expired_value_is_dropped_when_read() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.put_state("n", b"v", 5.0)
    clock.advance(5.0)
    assert len(store.values) == 1
    assert await store.get_state("n") is None
    assert len(store.values) == 0


async def test_state_values_stay_within_their_bounds_least_recently_used_first() -> None:
    clock = FakeClock()
    store = MemoryStore(MemoryStore.Options(max_state_items=3, max_state_bytes=100), clock=clock)
    for name in ("a", "b", "c"):
        await store.put_state(name, b"x" * 10, 3600)
    assert await store.get_state("a") == b"x" * 10  # read: now the most recently used
    await store.put_state("d", b"x" * 10, 3600)  # 4 items: "b" goes
    assert [await store.get_state(n) is not None for n in "abcd"] == [True, False, True, True]
    await store.put_state("e", b"y" * 85, 3600)  # 115 bytes: the least recently used go
    assert store.values.size <= 100 and await store.get_state("e") == b"y" * 85
    assert store.values.evicted >= 2
    await store.put_state("e", b"z" * 101, 3600)  # larger than the bound: not kept, the old one gone
    assert await store.get_state("e") is None
    await store.put_state("e", b"z" * 5, 3600)
    assert store.values.size == sum(len(v) for _, v in store.values._values.values())


def test_state_bounds_are_options() -> None:
    assert (
        decode_options({"max_state_items": 50, "max_state_bytes": 4096}, MemoryStore.Options).max_state_items
        == 50
    )
    assert MemoryStore.Options().max_state_items == 10_000
    for name in ("max_state_items", "max_state_bytes"):
        with pytest.raises(Exception, match=name):
            decode_options({name: 0}, MemoryStore.Options)
