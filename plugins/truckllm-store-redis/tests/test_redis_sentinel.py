"""The redis store through Redis Sentinel (one primary, one replica, three sentinels of its own):
conformance, and the primary stopped under load until Sentinel promotes the replica."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from truckllm_store_redis import RedisStore, SentinelOptions

from truckllm._internal.store import Admission, BudgetCheck, CooldownMark, Settlement
from truckllm_testing.redis_servers import RedisSentinel, require_redis_server, start_sentinel
from truckllm_testing.store_conformance import StoreConformance, StoreHarness


def _start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    require_redis_server()
    group = start_sentinel(tmp_path_factory.mktemp("sentinel"))
    yield group
    group.stop()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A Sentinel group of this module's own, stopped by PID afterwards."""
    yield from _start(tmp_path_factory)


@pytest.fixture
def doomed_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A Sentinel group of this test's own (its primary is stopped by the test)."""
    yield from _start(tmp_path_factory)


def _client(group: RedisSentinel) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=group.current_primary())


async def _delete_prefix(group: RedisSentinel, prefix: str) -> None:
    client = _client(group)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _store(group: RedisSentinel, prefix: str, **options: object) -> RedisStore:
    sentinel = SentinelOptions(master=group.master, nodes=group.sentinel_addrs)
    store = RedisStore(RedisStore.Options(sentinel=sentinel, prefix=prefix, **options))  # type: ignore[arg-type]
    await store.start()
    assert not store.outage.down, store.outage.error
    return store


@pytest.fixture
async def prefix(sentinel: RedisSentinel) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield value
    await _delete_prefix(sentinel, value)


class TestRedisSentinelConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, sentinel: RedisSentinel, prefix: str) -> AsyncIterator[StoreHarness]:
        async def reopen() -> RedisStore:
            return await _store(sentinel, prefix, flush_interval=3600, timeout=1.0)

        async def lose_data() -> None:
            await _delete_prefix(sentinel, prefix)

        async def state_ttl(name: str) -> float | None:
            client = _client(sentinel)
            try:
                pttl = await client.pttl(RedisStore(RedisStore.Options(prefix=prefix)).state_key(name))
            finally:
                await client.aclose()
            return None if pttl < 0 else pttl / 1000

        harness = StoreHarness(
            await reopen(), clock=None, reopen=reopen, lose_data=lose_data, state_ttl=state_ttl
        )
        yield harness
        await harness.store.close()


async def test_ready_names_the_sentinel_group_and_no_secret(sentinel: RedisSentinel, prefix: str) -> None:
    store = await _store(sentinel, prefix)
    try:
        ready = await store.ready()
        assert (
            ready["ok"] and ready["addr"] == f"sentinel {sentinel.master}@{','.join(sentinel.sentinel_addrs)}"
        )
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=4e9, reason="429"))
        assert [m.key for m in await store.cooldowns()] == ["k1"]
    finally:
        await store.close()


async def test_primary_stopped_under_load_sentinel_promotes_and_nothing_is_overspent(
    doomed_sentinel: RedisSentinel,
) -> None:
    """Requests run on two stores; the primary is stopped by its PID (SIGTERM: it shuts down once
    its replica has every write) and Sentinel promotes the replica. Every admit is answered (by
    Redis, or degraded: budgets denied), the budget is never overspent, counters converge."""
    group = doomed_sentinel
    prefix = "truckllm-test-failover:"
    one, two = await _store(group, prefix), await _store(group, prefix)
    limit, amount = 60.0, 0.1
    budget = BudgetCheck(key="gk:load:budget", limit=limit, period="total", amount=amount)
    allowed: list[str] = []
    degraded: list[float] = []
    exhausted: set[str] = set()
    errors: list[BaseException] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def worker(store: RedisStore, name: str) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            rid = f"{name}-{i}"
            try:
                decision = await store.admit(Admission(request_id=rid, budgets=(budget,)))
            except Exception as exc:  # never: a failover is answered degraded, not raised
                errors.append(exc)
                continue
            if decision.degraded:
                degraded.append(loop.time())
                assert not decision.allowed  # budgets fail closed
            elif not decision.allowed:
                assert decision.kind == "budget"
                exhausted.add(name[0])
            else:
                allowed.append(rid)
                await store.settle(
                    Settlement(request_id=rid, budget_adjust={"gk:load:budget": ("total", 0.0)})
                )
            await asyncio.sleep(0.01)

    workers = [
        asyncio.create_task(worker(s, f"{n}{w}")) for w in range(4) for n, s in (("a", one), ("b", two))
    ]
    old = group.primary.port
    try:
        await asyncio.sleep(0.3)
        before = len(allowed)
        started = loop.time()
        await asyncio.to_thread(group.primary.stop)  # SIGTERM by PID
        for _ in range(600):  # Sentinel notices after 1 s, then promotes the replica
            if exhausted == {"a", "b"} and await asyncio.to_thread(group.current_primary) != old:
                break
            await asyncio.sleep(0.05)
        assert exhausted == {"a", "b"}
        assert await asyncio.to_thread(group.current_primary) == group.replica.port
    finally:
        stop.set()
        await asyncio.gather(*workers)
    try:
        assert errors == []
        assert 0 < before < limit / amount  # the failover came before the budget ran out
        for store in (one, two):
            await store.flush(probe=True)
        client = _client(group)
        try:
            held = await client.hgetall(one.budget_key("gk:load:budget", "total"))
        finally:
            await client.aclose()
        spent = float(held.get(b"spent", 0))
        reserved = float(held.get(b"reserved", 0))
        assert spent + reserved <= limit + 1e-6  # never overspent
        assert reserved == pytest.approx(0.0, abs=1e-9)  # every request settled: counters converge
        assert spent == pytest.approx(amount * len(allowed))
        assert len(allowed) == pytest.approx(limit / amount)
        window = (degraded[-1] - started) if degraded else 0.0
        print(
            f"\nsentinel failover {old}->{group.replica.port}: admitted {len(allowed)} ({before} before it), "
            f"degraded answers {len(degraded)} within {window:.2f}s of the primary's SIGTERM"
        )
    finally:
        await one.close()
        await two.close()


async def test_cooldown_push_reaches_another_store(sentinel: RedisSentinel, prefix: str) -> None:
    one, two = await _store(sentinel, prefix), await _store(sentinel, prefix)
    received: asyncio.Queue[CooldownMark] = asyncio.Queue()
    watch = asyncio.create_task(two.watch_cooldowns(received.put_nowait))
    try:
        await asyncio.wait_for(two.subscribed.wait(), 10)
        await one.mark_cooldown(CooldownMark(provider="openai", key="k9", until=4e9, reason="429"))
        mark = await asyncio.wait_for(received.get(), 10)
        assert (mark.provider, mark.key, mark.until) == ("openai", "k9", 4e9)
    finally:
        await one.close()
        await two.close()
        await asyncio.wait_for(watch, 10)
