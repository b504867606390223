"""The redis store against the real Redis: one round trip, shared limits, key layout, outages."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from loguru import logger
from redis.crc import key_slot
from truckllm_store_redis import RedisStore, scripts

from truckllm.config.loader import decode_options
from truckllm.localstate import StoreUnavailable
from truckllm.secrets import Secret
from truckllm.store import Admission, BudgetCheck, CooldownMark, RateCheck, Settlement, UsageQuery
from truckllm.testing.store_conformance import StoreConformance, StoreHarness, make_records, sum_records

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield value
    await _delete_prefix(value)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Warning and error messages logged while the test runs."""
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """A TCP proxy to Redis that can be taken down (every connection cut) and brought back."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class TestRedisStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, prefix: str) -> AsyncIterator[StoreHarness]:
        async def reopen() -> RedisStore:
            return await _store(prefix, flush_interval=3600, timeout=1.0)  # semantics, not latency

        async def lose_data() -> None:  # Redis restarted without its data
            await _delete_prefix(prefix)

        harness = StoreHarness(await reopen(), clock=None, reopen=reopen, lose_data=lose_data)
        yield harness
        await harness.store.close()


async def _store(prefix: str, **options: object) -> RedisStore:
    store = RedisStore(RedisStore.Options(prefix=prefix, **options))  # type: ignore[arg-type]
    await store.start()
    return store


async def test_admit_is_one_round_trip_and_keys_share_one_cluster_slot(prefix: str) -> None:
    store = await _store(prefix, flush_interval=3600)
    try:
        client = store._redis
        assert client is not None
        sent: list[str] = []
        original = client.execute_command

        async def counting(*args: object, **kwargs: object) -> object:
            sent.append(str(args[0]))
            return await original(*args, **kwargs)

        client.execute_command = counting  # type: ignore[method-assign]
        admission = Admission(
            request_id="r1",
            rates=(RateCheck(key="gk:a:rpm", rate=5), RateCheck(key="pk:openai:k1:tpm", rate=1000, cost=300)),
            budgets=(BudgetCheck(key="gk:a:budget", limit=10.0, period="month", amount=0.5),),
        )
        decision = await store.admit(admission)
        assert decision.allowed
        assert decision.remaining == {"gk:a:rpm": 4, "pk:openai:k1:tpm": 700, "gk:a:budget": 9.5}
        assert sent == ["EVALSHA"]
        client.execute_command = original  # type: ignore[method-assign]
        keys = sorted([k.decode() async for k in client.scan_iter(match=prefix + "*")])
        window = time.strftime("%Y-%m", time.gmtime())
        assert keys == sorted(
            [
                f"{prefix}{{limits}}:rate:gk:a:rpm",
                f"{prefix}{{limits}}:rate:pk:openai:k1:tpm",
                f"{prefix}{{limits}}:budget:gk:a:budget:{window}",
            ]
        )
        assert len({key_slot(k.encode()) for k in keys}) == 1
        assert await client.ttl(f"{prefix}{{limits}}:budget:gk:a:budget:{window}") > 0
    finally:
        await store.close()


async def test_noscript_falls_back_to_eval(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scripts, "ADMIT_SHA", "0" * 40)  # a script Redis never saw
    store = await _store(prefix)
    try:
        decision = await store.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=1),)))
        assert decision.allowed and not decision.degraded
        assert not (await store.admit(Admission(request_id="s", rates=(RateCheck(key="k", rate=1),)))).allowed
        burst = RateCheck(key="burst", rate=3)
        decisions = await asyncio.gather(
            *(store.admit(Admission(request_id=str(i), rates=(burst,))) for i in range(6))
        )
        assert [d.allowed for d in decisions] == [True] * 3 + [False] * 3  # a pipeline, in order
        assert not any(d.degraded for d in decisions)
    finally:
        await store.close()


async def test_replicas_share_limits_and_budgets(prefix: str) -> None:
    one, two = await _store(prefix), await _store(prefix)
    try:
        budget = BudgetCheck(key="gk:a:budget", limit=10.0, period="day", amount=1.0)
        decisions = await asyncio.gather(
            *(s.admit(Admission(request_id=uuid.uuid4().hex, budgets=(budget,))) for s in [one, two] * 25)
        )
        assert sum(d.allowed for d in decisions) == 10 and not any(d.degraded for d in decisions)
        rpm = RateCheck(key="gk:a:rpm", rate=3, period=60.0)
        results = [
            await s.admit(Admission(request_id=uuid.uuid4().hex, rates=(rpm,))) for s in [one, two] * 3
        ]
        assert [d.allowed for d in results] == [True, True, True, False, False, False]
        await one.mark_cooldown(
            CooldownMark(provider="openai", key="k1", until=time.time() + 30, reason="429")
        )
        assert [(m.key, m.reason) for m in await two.cooldowns()] == [("k1", "429")]
    finally:
        await one.close()
        await two.close()


async def test_usage_is_batched_and_read_back(prefix: str) -> None:
    store = await _store(prefix, flush_interval=0.05)
    try:
        records = make_records(n=40)
        for record in records:
            store.store_usage(record)
        assert (await store.usage(UsageQuery())).total.requests == 0  # not flushed yet
        await asyncio.sleep(0.3)
        report = await store.usage(UsageQuery(group_by=("key",)))
        want = sum_records(records, ("key",))
        assert {r.group["key"]: r.requests for r in report.rows} == {
            k[0]: v.requests for k, v in want.items()
        }
        assert report.total.cost_usd == pytest.approx(sum(r.cost_usd for r in records))
    finally:
        await store.close()


async def test_closed_port_degrades_within_the_timeout(warnings: list[str]) -> None:
    store = RedisStore(RedisStore.Options(addr=f"127.0.0.1:{_closed_port()}", flush_interval=3600))
    await store.start()
    try:
        rpm = RateCheck(key="gk:a:rpm", rate=2, period=60.0)
        started = time.perf_counter()
        decisions = [await store.admit(Admission(request_id=f"r{i}", rates=(rpm,))) for i in range(3)]
        assert time.perf_counter() - started < 0.05 * 3
        assert [(d.allowed, d.degraded) for d in decisions] == [(True, True), (True, True), (False, True)]
        budget = BudgetCheck(key="gk:a:budget", limit=100.0, amount=0.01)
        denied = await store.admit(Admission(request_id="b", budgets=(budget,)))
        assert (denied.allowed, denied.kind, denied.denied_by, denied.degraded) == (
            False,
            "budget",
            "gk:a:budget",
            True,
        )
        details = await store.ready()
        assert details["ok"] is False and details["redis"] == "unreachable"
        with pytest.raises(StoreUnavailable):
            await store.usage(UsageQuery())
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=time.time() + 30))
        assert [m.key for m in await store.cooldowns()] == ["k1"]  # this process's own marks
    finally:
        await store.close()
    assert sum("writes are kept" in m for m in warnings) == 1  # once per outage


async def test_unanswering_redis_degrades_at_the_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(RedisStore.Options(addr=f"127.0.0.1:{port}", timeout=0.05, io_timeout=0.2))
    await store.start()  # times out: starts degraded
    store.outage.since = None  # pretend it was up, so admit tries Redis
    try:
        started = time.perf_counter()
        decision = await store.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=5),)))
        elapsed = time.perf_counter() - started
        assert decision.allowed and decision.degraded
        assert 0.04 <= elapsed < 0.1
        assert not store.outage.down  # one slow answer degrades only its own request
        for _ in range(2):
            await store.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=5),)))
        assert store.outage.down  # three in a row: an outage, answered at once from now on
        started = time.perf_counter()
        decision = await store.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=5),)))
        assert decision.degraded and time.perf_counter() - started < 0.01
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_outage_keeps_writes_and_resyncs(prefix: str, warnings: list[str]) -> None:
    proxy = Proxy()
    await proxy.start()
    store = await _store(prefix, addr=f"127.0.0.1:{proxy.port}", flush_interval=0.05, io_timeout=0.5)
    direct = await _store(prefix, flush_interval=3600)
    try:
        budget = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=2.0)
        assert (await store.admit(Admission(request_id="r1", budgets=(budget,)))).allowed
        await proxy.stop()
        await store.settle(
            Settlement(request_id="r1", budget_adjust={"gk:a:budget": ("total", 3.0)})
        )  # cost 5
        records = make_records(n=12)
        for record in records:
            store.store_usage(record)
        await store.mark_cooldown(
            CooldownMark(provider="openai", key="k9", until=time.time() + 60, reason="429")
        )
        decision = await store.admit(Admission(request_id="r2", rates=(RateCheck(key="k", rate=5),)))
        assert decision.allowed and decision.degraded
        assert (await store.ready())["redis"] == "unreachable"
        await asyncio.sleep(0.2)  # the flush task probes and fails quietly
        assert (await direct.usage(UsageQuery())).total.requests == 0

        await proxy.start()
        for _ in range(50):
            await asyncio.sleep(0.05)
            # resynced: back up, nothing pending, and no batch still on its way (a flush takes
            # the pending writes before it sends them)
            if not store.outage.down and not len(store._pending) and not store._flush_lock.locked():
                break
        assert (await store.ready())["ok"] is True
        assert (await direct.usage(UsageQuery())).total.requests == 12
        assert [m.key for m in await direct.cooldowns()] == ["k9"]
        over = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=5.5)
        assert not (await direct.admit(Admission(request_id="r3", budgets=(over,)))).allowed
        fits = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=5.0)
        assert (await direct.admit(Admission(request_id="r4", budgets=(fits,)))).allowed
        decision = await store.admit(Admission(request_id="r5", rates=(RateCheck(key="k", rate=5),)))
        assert decision.allowed and not decision.degraded
    finally:
        await store.close()
        await direct.close()
        await proxy.stop()
    assert sum("writes are kept" in m for m in warnings) == 1


async def test_options_decode_from_config_and_ready_shows_no_secret(prefix: str) -> None:
    options = decode_options(
        {
            "url": "redis://:hunter2@127.0.0.1:6379/0",
            "prefix": prefix,
            "timeout": "20ms",
            "flush_interval": "2s",
        },
        RedisStore.Options,
    )
    assert (options.timeout, options.flush_interval, options.db) == (0.02, 2.0, 0)
    with_password = decode_options({"password": "hunter2"}, RedisStore.Options)
    assert isinstance(with_password.password, Secret) and "hunter2" not in repr(with_password)
    store = RedisStore(options)
    details = await store.ready()  # not started
    assert details["ok"] is False and "hunter2" not in repr(details) and details["addr"] == "127.0.0.1:6379"
    with pytest.raises(Exception, match="unknown"):
        decode_options({"adress": "x"}, RedisStore.Options)
