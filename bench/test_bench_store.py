"""admit() latency, memory store vs redis store, side by side.

``make bench`` (pytest-benchmark: one round = 1000 sequential admits; per-admit percentiles in
``extra_info``), or ``.venv/bin/python bench/test_bench_store.py`` for a plain table. Each admit
is what a request with a gateway key's rpm, tpm and budget sends: two GCRA checks and one budget
reservation. The redis store talks to the real Redis on 127.0.0.1:6379 (one EVALSHA per admit).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from truckllm_store_memory import MemoryStore
from truckllm_store_redis import RedisStore

from truckllm._internal.store import Admission, BudgetCheck, RateCheck, Store

SEQUENTIAL = 1000
CONCURRENCY = 100


def _admission(i: int) -> Admission:
    return Admission(
        request_id=f"bench-{i}",
        rates=(
            RateCheck(key="gk:bench:rpm", rate=10**9, period=60.0),
            RateCheck(key="gk:bench:tpm", rate=10**12, period=60.0, cost=1500),
        ),
        budgets=(BudgetCheck(key="gk:bench:budget", limit=1e12, period="month", amount=0.01),),
    )


def _loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a Linux dependency
        return asyncio.new_event_loop()


async def _make(kind: str) -> Store:
    if kind == "memory":
        store: Store = MemoryStore()
    else:
        store = RedisStore(RedisStore.Options(prefix=f"truckllm-bench-{uuid.uuid4().hex[:8]}:"))
    await store.start()
    return store


async def _cleanup(store: Store) -> None:
    if isinstance(store, RedisStore):
        prefix = store.options.prefix
        client = store._redis
        if client is not None:
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
    await store.close()


DEGRADED: dict[str, int] = {}


async def _sequential(store: Store, n: int, offset: int = 0) -> list[float]:
    took = []
    for i in range(n):
        started = time.perf_counter_ns()
        decision = await store.admit(_admission(offset + i))
        took.append((time.perf_counter_ns() - started) / 1000)
        assert decision.allowed or decision.degraded
        if decision.degraded:  # slower than the store's timeout: answered locally
            DEGRADED[store.name] = DEGRADED.get(store.name, 0) + 1
    return took


async def _concurrent(store: Store, tasks: int, each: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    parts = await asyncio.gather(*(_sequential(store, each, offset=10**6 * (t + 1)) for t in range(tasks)))
    return tasks * each / (time.perf_counter() - started), [x for part in parts for x in part]


def _percentiles(us: list[float]) -> dict[str, float]:
    q = statistics.quantiles(us, n=100)
    return {"p50_us": round(q[49], 1), "p99_us": round(q[98], 1), "mean_us": round(statistics.fmean(us), 1)}


@contextlib.contextmanager
def _store(kind: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Store]]:
    loop = _loop()
    store = loop.run_until_complete(_make(kind))
    try:
        loop.run_until_complete(_sequential(store, 200))  # warm-up
        yield loop, store
    finally:
        loop.run_until_complete(_cleanup(store))
        loop.close()


def measure(kind: str) -> dict[str, Any]:
    """Sequential latency percentiles and concurrent throughput of ``admit()`` for one store."""
    with _store(kind) as (loop, store):
        DEGRADED.pop(store.name, None)
        sequential = loop.run_until_complete(_sequential(store, 5 * SEQUENTIAL, offset=10**5))
        rate, concurrent = loop.run_until_complete(_concurrent(store, CONCURRENCY, 50))
    return {
        "store": kind,
        **_percentiles(sequential),
        "concurrent_admits_per_s": round(rate),
        **{f"c{CONCURRENCY}_{k}": v for k, v in _percentiles(concurrent).items()},
        "degraded": DEGRADED.get(kind, 0),
    }


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_bench_admit(benchmark: Any, kind: str) -> None:
    with _store(kind) as (loop, store):
        samples: list[float] = []

        def run() -> None:
            samples.extend(loop.run_until_complete(_sequential(store, SEQUENTIAL, offset=len(samples))))

        benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
        benchmark.extra_info.update({"admits_per_round": SEQUENTIAL, **_percentiles(samples)})


def main() -> None:
    """Print both stores' figures side by side."""
    rows = [measure("memory"), measure("redis")]
    names = list(rows[0])
    print(f"{'':28}" + "".join(f"{r['store']:>12}" for r in rows))
    for name in names[1:]:
        print(f"{name:28}" + "".join(f"{r[name]:>12}" for r in rows))


if __name__ == "__main__":
    main()
