"""The redis store on a Redis Cluster of its own (3 primaries, 3 replicas): conformance, one slot per
script and transaction, and a primary failover under load."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from truckllm_store_redis import RedisStore

from truckllm._internal.store import Admission, BudgetCheck, CooldownMark, RateCheck, Settlement, UsageQuery
from truckllm_testing.redis_servers import RedisCluster as Cluster
from truckllm_testing.redis_servers import require_redis_server, start_cluster
from truckllm_testing.store_conformance import StoreConformance, StoreHarness, make_records


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 6-node cluster of this module's own, stopped by PID afterwards."""
    require_redis_server()
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield nodes
    nodes.stop()


def _client(cluster: Cluster) -> RedisCluster:
    port = next(n.port for n in cluster.nodes if n.process.poll() is None)
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port)])


async def _keys(cluster: Cluster, prefix: str) -> list[str]:
    client = _client(cluster)
    try:
        return sorted(
            [
                k.decode()
                async for k in client.scan_iter(
                    match=prefix + "*", count=1000, target_nodes=RedisCluster.PRIMARIES
                )
            ]
        )
    finally:
        await client.aclose()


async def _delete_prefix(cluster: Cluster, prefix: str) -> None:
    client = _client(cluster)
    try:
        async for key in client.scan_iter(
            match=prefix + "*", count=1000, target_nodes=RedisCluster.PRIMARIES
        ):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(cluster: Cluster) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield value
    await _delete_prefix(cluster, value)


async def _store(cluster: Cluster, prefix: str, **options: object) -> RedisStore:
    nodes = [n.addr for n in cluster.nodes if n.process.poll() is None][:2]
    store = RedisStore(RedisStore.Options(cluster=True, nodes=nodes, prefix=prefix, **options))  # type: ignore[arg-type]
    await store.start()
    assert not store.outage.down, store.outage.error
    return store


class TestRedisClusterConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, cluster: Cluster, prefix: str) -> AsyncIterator[StoreHarness]:
        async def reopen() -> RedisStore:
            return await _store(cluster, prefix, flush_interval=3600, timeout=1.0)

        async def lose_data() -> None:
            await _delete_prefix(cluster, prefix)

        async def state_ttl(name: str) -> float | None:
            client = _client(cluster)
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


async def test_every_written_key_of_a_kind_shares_one_slot(cluster: Cluster, prefix: str) -> None:
    store = await _store(cluster, prefix, flush_interval=3600)
    try:
        admission = Admission(
            request_id="r1",
            rates=(RateCheck(key="gk:a:rpm", rate=5), RateCheck(key="pk:openai:k1:tpm", rate=1000, cost=300)),
            budgets=(
                BudgetCheck(key="gk:a:budget", limit=10.0, period="month", amount=0.5),
                BudgetCheck(key="gk:b:budget", limit=10.0, period="total", amount=0.5),
            ),
        )
        assert (await store.admit(admission)).allowed
        await store.settle(Settlement(request_id="r1", rate_adjust={"pk:openai:k1:tpm": -100}))
        for record in make_records(20):
            store.store_usage(record)
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=4e9, reason="429"))
        await store.put_state("a", b"1", 60)
        await store.put_state("b", b"2", 60)
        await store.flush()
        assert not store.outage.down, store.outage.error
        keys = await _keys(cluster, prefix)
        kinds: dict[str, set[int]] = {}
        for key in keys:
            tag = key[len(prefix) :].split(":", 1)[0]
            kinds.setdefault(tag, set()).add(key_slot(key.encode()))
        assert set(kinds) == {"{limits}", "{usage}", "{cooldowns}", "state"}
        for tag in ("{limits}", "{usage}", "{cooldowns}"):
            assert len(kinds[tag]) == 1, (tag, kinds)
        report = await store.usage(UsageQuery(group_by=("key",)))
        assert sum(row.requests for row in report.rows) == 20
        assert [m.key for m in await store.cooldowns()] == ["k1"]
    finally:
        await store.close()


async def test_flush_sends_one_transaction_per_slot_and_requeues_what_failed(
    cluster: Cluster, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(cluster, prefix, flush_interval=3600)
    try:
        budget = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=1.0)
        assert (await store.admit(Admission(request_id="r1", budgets=(budget,)))).allowed
        await store.settle(Settlement(request_id="r1", budget_adjust={"gk:a:budget": ("total", 0.5)}))
        for record in make_records(5):
            store.store_usage(record)
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=4e9, reason="429"))
        sent: list[str] = []
        original = store._queue_writes

        async def failing_usage(pipe: object, part: object) -> None:
            kinds = [k for k in ("rates", "budgets", "usage", "cooldowns") if len(getattr(part, k))]
            sent.append(",".join(kinds))
            if "usage" in kinds and len(sent) == 2:
                raise ConnectionError("the {usage} primary is gone")
            await original(pipe, part)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_queue_writes", failing_usage)
        with pytest.raises(ConnectionError):
            await store.flush()
        assert sent == ["budgets", "usage"]
        assert store.outage.down
        # what was sent is not sent again; what failed is kept
        assert not store._pending.budgets and len(store._pending.usage) and not store._pending.cooldowns
        await store.flush(probe=True)
        assert sent == ["budgets", "usage", "usage"]
        report = await store.usage(UsageQuery(group_by=("key",)))
        assert sum(row.requests for row in report.rows) == 5
        client = _client(cluster)
        try:
            spent = await client.hget(store.budget_key("gk:a:budget", "total"), "spent")
        finally:
            await client.aclose()
        assert spent is not None and float(spent) == pytest.approx(1.5)
    finally:
        await store.close()


async def test_cooldown_push_reaches_another_store(cluster: Cluster, prefix: str) -> None:
    one, two = await _store(cluster, prefix), await _store(cluster, prefix)
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


def _failover(cluster: Cluster, slot: int) -> tuple[int, int]:
    """``CLUSTER FAILOVER`` on a replica of the primary of ``slot``; its (old, new) ports."""
    old = cluster.primary_of(slot)
    replica = cluster.replicas_of(old)[0]
    assert "OK" in cluster.cli(replica, "cluster", "failover")
    return old, replica


async def test_primary_failover_under_load_never_overspends(cluster: Cluster, prefix: str) -> None:
    """Requests run on two stores while the primary of ``{limits}`` fails over to its replica
    (``CLUSTER FAILOVER``): every admit is answered (by Redis, or degraded: budgets denied), the
    budget is never overspent, and after the failover both stores see the same counters."""
    await asyncio.to_thread(cluster.wait_healthy)
    one, two = await _store(cluster, prefix), await _store(cluster, prefix)
    limit, amount = 60.0, 0.1  # room for 600 requests: about 0.3 s of load before the failover
    budget = BudgetCheck(key="gk:load:budget", limit=limit, period="total", amount=amount)
    allowed: list[str] = []
    degraded: list[float] = []
    exhausted: set[str] = set()
    errors: list[BaseException] = []
    stop = asyncio.Event()
    slot = key_slot(one.budget_key("gk:load:budget", "total").encode())
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
    try:
        await asyncio.sleep(0.3)
        before = len(allowed)
        started = loop.time()
        old, new = await asyncio.to_thread(_failover, cluster, slot)
        for _ in range(600):  # until the budget runs out on both stores, answered by Redis
            if await asyncio.to_thread(cluster.primary_of, slot) == new and exhausted == {"a", "b"}:
                break
            await asyncio.sleep(0.05)
        assert exhausted == {"a", "b"}
        assert await asyncio.to_thread(cluster.primary_of, slot) == new
    finally:
        stop.set()
        await asyncio.gather(*workers)
    try:
        assert errors == []
        assert 0 < before < limit / amount  # the failover came before the budget ran out
        for store in (one, two):
            await store.flush(probe=True)
        client = _client(cluster)
        try:
            held = await client.hgetall(one.budget_key("gk:load:budget", "total"))
        finally:
            await client.aclose()
        spent = float(held.get(b"spent", 0))
        reserved = float(held.get(b"reserved", 0))
        assert spent + reserved <= limit + 1e-6  # never overspent
        assert reserved == pytest.approx(0.0, abs=1e-9)  # every request settled: counters converge
        assert spent == pytest.approx(amount * len(allowed))  # every admitted request counted once
        assert len(allowed) == pytest.approx(limit / amount)  # and the whole budget was used
        after = [
            await s.admit(Admission(request_id=f"after-{n}", budgets=(budget,)))
            for n, s in enumerate((one, two))
        ]
        assert all(not d.allowed and not d.degraded and d.kind == "budget" for d in after)
        window = (degraded[-1] - started) if degraded else 0.0
        print(
            f"\nfailover {old}->{new}: admitted {len(allowed)} ({before} before it), "
            f"degraded answers {len(degraded)} within {window:.2f}s of CLUSTER FAILOVER"
        )
    finally:
        await one.close()
        await two.close()


@pytest.mark.parametrize("script_runs", ["before the cancel", "after the cancel"])
async def test_an_admit_that_timed_out_holds_no_reservation(
    cluster: Cluster, prefix: str, script_runs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admit the caller gave up on (past ``timeout``) may still run in Redis (a client retry
    after a failover): whether it runs before or after the next flush, it ends holding nothing."""
    store = await _store(cluster, prefix, flush_interval=3600, timeout=0.05)
    try:
        release = asyncio.Event()
        pipeline = store._admits
        original = pipeline._send

        async def late(batch: list[object]) -> list[object]:
            await release.wait()  # the caller times out meanwhile
            return await original(batch)  # type: ignore[arg-type]

        monkeypatch.setattr(pipeline, "_send", late)
        budget = BudgetCheck(key="gk:late:budget", limit=1.0, period="total", amount=0.4)
        decision = await store.admit(Admission(request_id="late-1", budgets=(budget,)))
        assert decision.degraded and not decision.allowed  # answered locally: budgets fail closed
        key = store.budget_key("gk:late:budget", "total")
        client = _client(cluster)
        try:
            if script_runs == "before the cancel":
                release.set()
                await asyncio.sleep(0)
                for _ in range(100):
                    if await client.hget(key, "r:late-1") is not None:
                        break
                    await asyncio.sleep(0.01)
                assert await client.hget(key, "r:late-1") is not None
                await store.flush(probe=True)
            else:
                await store.flush(probe=True)
                release.set()
                for _ in range(100):
                    if not pipeline._tasks:
                        break
                    await asyncio.sleep(0.01)
                assert not pipeline._tasks
            held = await client.hgetall(key)
        finally:
            await client.aclose()
        assert b"r:late-1" not in held
        assert float(held.get(b"reserved", 0)) == 0.0
        assert float(held.get(b"spent", 0)) == 0.0
        monkeypatch.setattr(pipeline, "_send", original)
        for i in range(2):  # the whole budget is still there: 2 x 0.4 fit, a third does not
            assert (await store.admit(Admission(request_id=f"next-{i}", budgets=(budget,)))).allowed
        assert not (await store.admit(Admission(request_id="next-2", budgets=(budget,)))).allowed
    finally:
        await store.close()


@pytest.fixture
def doomed_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of this test's own (one of its primaries is killed)."""
    require_redis_server()
    nodes = start_cluster(tmp_path_factory.mktemp("doomed-cluster"))
    yield nodes
    nodes.stop()


async def test_primary_killed_under_load_every_request_is_answered(doomed_cluster: Cluster) -> None:
    """The primary of ``{limits}`` is killed by its PID (``SIGKILL``) under load; its replica takes
    over after the node timeout (1 s). Every admit is answered (degraded meanwhile: budgets denied),
    and afterwards both stores are answered by Redis again and agree. Redis replicates
    asynchronously, so a kill may lose the last writes: the budget may be overspent by at most the
    requests in flight when it died (8 here), never more."""
    cluster = doomed_cluster
    prefix = "truckllm-test-kill:"
    one, two = await _store(cluster, prefix), await _store(cluster, prefix)
    limit, amount = 60.0, 0.1
    budget = BudgetCheck(key="gk:load:budget", limit=limit, period="total", amount=amount)
    allowed: list[str] = []
    degraded: list[float] = []
    exhausted: set[str] = set()
    errors: list[BaseException] = []
    stop = asyncio.Event()
    slot = key_slot(one.budget_key("gk:load:budget", "total").encode())
    loop = asyncio.get_running_loop()

    async def worker(store: RedisStore, name: str) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            rid = f"{name}-{i}"
            try:
                decision = await store.admit(Admission(request_id=rid, budgets=(budget,)))
            except Exception as exc:
                errors.append(exc)
                continue
            if decision.degraded:
                degraded.append(loop.time())
                assert not decision.allowed
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
    old = cluster.primary_of(slot)
    new = cluster.replicas_of(old)[0]
    try:
        await asyncio.sleep(0.3)
        before = len(allowed)
        started = loop.time()
        cluster.node(old).stop(sig_kill=True)
        for _ in range(600):
            if exhausted == {"a", "b"} and await asyncio.to_thread(cluster.primary_of, slot) == new:
                break
            await asyncio.sleep(0.05)
        assert exhausted == {"a", "b"}, (one.outage.error, two.outage.error, len(allowed), len(degraded))
    finally:
        stop.set()
        await asyncio.gather(*workers)
    try:
        assert errors == []
        assert 0 < before < limit / amount
        for store in (one, two):
            await store.flush(probe=True)
        after = [
            await s.admit(Admission(request_id=f"after-{n}", budgets=(budget,)))
            for n, s in enumerate((one, two))
        ]
        assert all(not d.allowed and not d.degraded and d.kind == "budget" for d in after)
        client = _client(cluster)
        try:
            held = await client.hgetall(one.budget_key("gk:load:budget", "total"))
        finally:
            await client.aclose()
        spent, reserved = float(held.get(b"spent", 0)), float(held.get(b"reserved", 0))
        assert reserved == pytest.approx(0.0, abs=1e-9)  # converged: nothing held after settling
        assert spent + reserved <= limit + 1e-6
        assert limit / amount <= len(allowed) <= limit / amount + 8
        window = (degraded[-1] - started) if degraded else 0.0
        print(
            f"\nSIGKILL of primary {old}, {new} promoted: admitted {len(allowed)} ({before} before it), "
            f"degraded answers {len(degraded)} within {window:.2f}s, spent {spent:.2f} of {limit}"
        )
    finally:
        await one.close()
        await two.close()
