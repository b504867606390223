"""The memory store passes the store conformance suite (with a fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from truckllm_store_memory import MemoryStore

from truckllm._internal.store import Admission, RateCheck
from truckllm_testing.store_conformance import FakeClock, StoreConformance, StoreHarness


class TestMemoryStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = MemoryStore(MemoryStore.Options(), clock=clock)
        await store.start()

        async def reopen() -> MemoryStore:
            return MemoryStore(MemoryStore.Options(), clock=clock, state=store.state)

        harness = StoreHarness(store, clock=clock, reopen=reopen)
        yield harness
        await harness.store.close()


async def test_each_instance_has_its_own_state() -> None:
    one, two = MemoryStore(), MemoryStore()
    check = RateCheck(key="k", rate=1)
    assert (await one.admit(Admission(request_id="a", rates=(check,)))).allowed
    assert (await two.admit(Admission(request_id="b", rates=(check,)))).allowed
    assert await one.ready() == {"ok": True, "store": "memory"}
