"""The budget rules as a property, on all four stores (Redis: the real one).

Any sequence of admissions, settlements (with any correction: negative, huge, not a number),
repeated settlements, settlements of requests never admitted, and losses of the backend's data
keeps ``spent + reserved`` at or above 0 and at or above what the store must still hold, and above
the limit by no more than the documented slack (see
:func:`truckllm_testing.store_conformance.run_budget_ops`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from truckllm_store_file import FileStore
from truckllm_store_http import HttpStore
from truckllm_store_memory import MemoryStore
from truckllm_store_redis import RedisStore

from truckllm._internal.localstate import LocalState
from truckllm._internal.secrets import Secret
from truckllm_testing.store_conformance import BudgetOp, FakeClock, StoreHarness, budget_ops, run_budget_ops
from truckllm_testing.store_server import LocalStore, StoreServer

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "60"))
"""Examples for the memory store; the others (a file, a socket) get a quarter (at least 10)."""


async def delete_prefix(prefix: str) -> None:
    """Delete every Redis key under ``prefix``: Redis restarted without its data."""
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def harness(kind: str, directory: Path) -> AsyncIterator[StoreHarness]:
    """A fresh, started store of ``kind`` with a way to lose its backend's data (not the file store's)."""
    clock = FakeClock()
    if kind == "memory":
        memory = MemoryStore(clock=clock)

        async def lose_memory() -> None:
            memory.state = LocalState(clock)

        yield StoreHarness(memory, clock=clock, lose_data=lose_memory)
    elif kind == "file":
        options = FileStore.Options(path=str(directory / f"{uuid.uuid4().hex}.db"), flush_interval=3600)
        file = FileStore(options, clock=clock)
        await file.start()
        try:
            yield StoreHarness(file, clock=clock)
        finally:
            await file.close()
    elif kind == "http":
        backend = LocalStore(clock)

        async def lose_service() -> None:
            backend.state = LocalState(clock)

        async with StoreServer(backend, token="t") as server:
            http = HttpStore(
                HttpStore.Options(url=server.url, token=Secret("t"), flush_interval=3600, timeout=2.0),
                clock=clock,
            )
            await http.start()
            try:
                yield StoreHarness(http, clock=clock, lose_data=lose_service)
            finally:
                await http.close()
    else:
        prefix = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
        redis = RedisStore(
            RedisStore.Options(prefix=prefix, flush_interval=3600, timeout=2.0, max_connections=2)
        )
        await redis.start()

        async def lose_redis() -> None:
            await delete_prefix(prefix)

        try:
            yield StoreHarness(redis, clock=None, lose_data=lose_redis)
        finally:
            await redis.close()
            await delete_prefix(prefix)


async def play(kind: str, directory: Path, ops: list[BudgetOp]) -> None:
    async with harness(kind, directory) as h:
        await run_budget_ops(h, ops)


@pytest.mark.parametrize("kind", ["memory", "file", "http", pytest.param("redis", marks=pytest.mark.redis)])
def test_budget_sequences_keep_the_rules(kind: str, tmp_path: Path) -> None:
    examples = EXAMPLES if kind == "memory" else max(10, EXAMPLES // 4)

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=budget_ops())
    def check(ops: list[BudgetOp]) -> None:
        asyncio.run(play(kind, tmp_path, ops))

    check()
