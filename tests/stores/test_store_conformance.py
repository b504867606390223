"""The store conformance suite against all four built-in stores (Redis: the real one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from truckllm_store_file import FileStore
from truckllm_store_http import HttpStore
from truckllm_store_memory import MemoryStore
from truckllm_store_redis import RedisStore

from truckllm._internal.localstate import LocalState
from truckllm._internal.secrets import Secret
from truckllm._internal.store import Store
from truckllm_testing.store_conformance import FakeClock, StoreConformance, StoreHarness
from truckllm_testing.store_server import LocalStore, StoreServer

REDIS_URL = "redis://127.0.0.1:6379/0"


async def delete_prefix(prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (a Redis that lost its data, as far as it is concerned)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    await delete_prefix(prefix)


class TestMemoryStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = MemoryStore(MemoryStore.Options(), clock=clock)
        await store.start()

        async def reopen() -> Store:  # a memory store's state lives as long as the process
            return MemoryStore(MemoryStore.Options(), clock=clock, state=store.state, values=store.values)

        async def lose_data() -> None:  # the process restarted: the state, reservations included, is gone
            store.state = LocalState(clock)

        harness = StoreHarness(store, clock=clock, reopen=reopen, lose_data=lose_data)
        yield harness
        await harness.store.close()


class TestFileStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, tmp_path: Path) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        options = FileStore.Options(path=str(tmp_path / "state.db"), flush_interval=3600)

        async def open_store() -> Store:
            store = FileStore(options, clock=clock)
            await store.start()
            return store

        harness = StoreHarness(await open_store(), clock=clock, reopen=open_store)
        yield harness
        await harness.store.close()


@pytest.mark.redis
class TestRedisStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, redis_prefix: str) -> AsyncIterator[StoreHarness]:
        # the suite checks semantics; a generous timeout keeps a loaded CI machine from degrading answers
        options = RedisStore.Options(prefix=redis_prefix, flush_interval=3600, timeout=1.0)

        async def open_store() -> Store:
            store = RedisStore(options)
            await store.start()
            return store

        async def lose_data() -> None:  # Redis restarted without its data
            await delete_prefix(redis_prefix)

        async def state_ttl(name: str) -> float | None:  # PTTL: checked without waiting
            client = aioredis.Redis.from_url(REDIS_URL)
            try:
                pttl = await client.pttl(RedisStore(options).state_key(name))
            finally:
                await client.aclose()
            return None if pttl < 0 else pttl / 1000

        harness = StoreHarness(
            await open_store(), clock=None, reopen=open_store, lose_data=lose_data, state_ttl=state_ttl
        )
        yield harness
        await harness.store.close()


class TestHttpStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        backend = LocalStore(clock)
        server = StoreServer(backend, token="t0ken", clock=clock)
        await server.start()
        options = HttpStore.Options(url=server.url, token=Secret("t0ken"), flush_interval=3600, timeout=1.0)

        async def open_store() -> Store:
            store = HttpStore(options, clock=clock)
            await store.start()
            return store

        async def lose_data() -> None:  # the service restarted without its data
            backend.state = LocalState(clock)

        harness = StoreHarness(await open_store(), clock=clock, reopen=open_store, lose_data=lose_data)
        yield harness
        await harness.store.close()
        await server.stop()
