"""The redis store against the real Redis: one round trip, shared limits, key layout, outages."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import msgspec
import pytest
import redis.asyncio as aioredis
from loguru import logger
from redis.crc import key_slot
from truckllm_store_redis import RedisStore, scripts

from truckllm._internal.config.loader import decode_options
from truckllm._internal.localstate import StoreUnavailable
from truckllm._internal.secrets import Secret
from truckllm._internal.store import Admission, BudgetCheck, CooldownMark, RateCheck, Settlement, UsageQuery
from truckllm_testing.store_conformance import StoreConformance, StoreHarness, make_records, sum_records

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


def _state_ttl(prefix: str) -> Callable[[str], Awaitable[float | None]]:
    """The remaining time to live of a state value in Redis (``PTTL``), ``None`` when absent."""

    async def state_ttl(name: str) -> float | None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            pttl = await client.pttl(RedisStore(RedisStore.Options(prefix=prefix)).state_key(name))
        finally:
            await client.aclose()
        return None if pttl < 0 else pttl / 1000

    return state_ttl


class TestRedisStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, prefix: str) -> AsyncIterator[StoreHarness]:
        async def reopen() -> RedisStore:
            return await _store(prefix, flush_interval=3600, timeout=1.0)  # semantics, not latency

        async def lose_data() -> None:  # Redis restarted without its data
            await _delete_prefix(prefix)

        harness = StoreHarness(
            await reopen(), clock=None, reopen=reopen, lose_data=lose_data, state_ttl=_state_ttl(prefix)
        )
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
        started = time.perf_counter()  # state values have no local fallback: refused at once
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.put_state("responses:a:resp_1", b"v", 60)
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.get_state("responses:a:resp_1")
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.delete_state("responses:a:resp_1")
        assert time.perf_counter() - started < 0.05
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


# --- issue 13: every key expires, numbers read back are clamped, an enable reaches Redis ------------


async def _keys_without_ttl(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` and its TTL in seconds (-1: none)."""
    return {key.decode(): await client.ttl(key) async for key in client.scan_iter(match=prefix + "*")}


async def test_every_key_the_store_writes_expires(prefix: str) -> None:
    """After a workload of every kind, SCAN the prefix: every key has a TTL but a ``total`` budget's,
    and a usage day expires ``usage_retention`` after the day ends."""
    store = await _store(prefix, flush_interval=3600, timeout=1.0, usage_retention=30 * 86400)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        rates = (RateCheck(key="gk:a:rpm", rate=50), RateCheck(key="gk:a:tpm", rate=1000, cost=30))
        for period in ("day", "week", "month", "total"):
            budget = BudgetCheck(key=f"gk:a:{period}", limit=10.0, period=period, amount=1.0)  # type: ignore[arg-type]
            for rid in (f"{period}-settled", f"{period}-open"):
                assert (await store.admit(Admission(request_id=rid, rates=rates, budgets=(budget,)))).allowed
            adjust = {budget.key: (period, 0.5)}
            await store.settle(
                Settlement(
                    request_id=f"{period}-settled", rate_adjust={"gk:a:tpm": -100}, budget_adjust=adjust
                )
            )  # type: ignore[dict-item]
        await store.settle(Settlement(request_id="never", budget_adjust={"gk:b:budget": ("month", 2.0)}))
        for record in make_records(n=20, days=3):
            store.store_usage(record)
        record = make_records(n=1)[0]
        store.store_usage(msgspec.structs.replace(record, started_at=time.time()))
        now = time.time()
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=now + 60, reason="429"))
        await store.mark_cooldown(CooldownMark(provider="openai", key="k2", until=now + 30, reason="5xx"))
        await store.clear_cooldown("openai", "k1")
        await store.put_state("responses:team-a:resp_1", b"{}", 30 * 86400)
        await store.flush()
        ttls = await _keys_without_ttl(client, prefix)
        assert ttls[f"{prefix}state:responses:team-a:resp_1"] == pytest.approx(30 * 86400, abs=5)
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        assert f"{prefix}{{usage}}:day:{day}" in ttls and f"{prefix}{{cooldowns}}:until" in ttls
        assert len([k for k in ttls if ":budget:" in k]) == 5
        forever = sorted(k for k, ttl in ttls.items() if ttl < 0)
        assert forever == [f"{prefix}{{limits}}:budget:gk:a:total:total"]  # documented: the cap itself
        day_ttl = ttls[f"{prefix}{{usage}}:day:{day}"]
        end_of_day = (int(now) // 86400 + 1) * 86400
        assert day_ttl == pytest.approx(end_of_day + 30 * 86400 - now, abs=5)
        assert ttls[f"{prefix}{{usage}}:days"] == pytest.approx(32 * 86400, abs=5)
        assert ttls[f"{prefix}{{cooldowns}}:until"] <= 32  # k1 is cleared: the latest mark left is k2's
        old_days = [k for k in ttls if ":day:2026-03-0" in k]
        assert old_days == []  # make_records' days (March 2026) were past the retention: not written
    finally:
        await store.close()
        await client.aclose()


async def test_records_past_the_retention_are_not_written_and_old_days_are_forgotten(prefix: str) -> None:
    store = await _store(prefix, flush_interval=3600, timeout=1.0, usage_retention=2 * 86400)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        base = make_records(n=1)[0]
        now = time.time()
        for age_days in (0, 1, 5):
            store.store_usage(msgspec.structs.replace(base, started_at=now - age_days * 86400))
        await store.flush()
        await client.sadd(f"{prefix}{{usage}}:days", "2001-01-01")  # left by an older version
        report = await store.usage(UsageQuery(group_by=("day",)))
        assert report.total.requests == 2
        assert await client.smembers(f"{prefix}{{usage}}:days") == {
            time.strftime("%Y-%m-%d", time.gmtime(now - d * 86400)).encode() for d in (0, 1)
        }
    finally:
        await store.close()
        await client.aclose()


async def test_numbers_read_back_from_redis_are_clamped(prefix: str) -> None:
    """A negative spent or reserved (an older version, a hand edit) never loosens a budget, and a
    negative usage counter reads as 0."""
    store = await _store(prefix, flush_interval=3600, timeout=1.0)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        name = store.budget_key("gk:a:budget", "total")
        await client.hset(name, mapping={"spent": "-100", "reserved": "-50"})
        over = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=10.5)
        assert not (await store.admit(Admission(request_id="a", budgets=(over,)))).allowed
        fits = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=4.0)
        assert (await store.admit(Admission(request_id="b", budgets=(fits,)))).allowed
        assert float(await client.hget(name, "reserved")) == 4.0  # the negative one was dropped
        await store.settle(Settlement(request_id="b", budget_adjust={"gk:a:budget": ("total", -1.0)}))
        await store.flush()
        assert (float(await client.hget(name, "spent")), float(await client.hget(name, "reserved"))) == (
            3.0,
            0.0,
        )
        day = store.day_key(time.strftime("%Y-%m-%d", time.gmtime()))
        label = '["team-a","gpt-4o","openai","oa","gpt-4o"]'
        await client.hset(day, mapping={f"{label}\trequests": -5, f"{label}\tcost_usd": "-1000.5"})
        await client.sadd(f"{prefix}{{usage}}:days", time.strftime("%Y-%m-%d", time.gmtime()))
        total = (await store.usage(UsageQuery())).total
        assert (total.requests, total.cost_usd) == (0, 0.0)
    finally:
        await store.close()
        await client.aclose()


async def test_reserved_never_goes_below_zero_after_redis_lost_its_data(prefix: str) -> None:
    """The finding: in-flight reservations settled after a restart that lost the data left a negative
    ``reserved`` that loosened the budget for good."""
    store = await _store(prefix, flush_interval=3600, timeout=1.0)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        budget = BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=4.0)
        for rid in ("r1", "r2"):
            assert (await store.admit(Admission(request_id=rid, budgets=(budget,)))).allowed
        await _delete_prefix(prefix)  # Redis restarted empty
        for rid in ("r1", "r2"):
            await store.settle(Settlement(request_id=rid, budget_adjust={"gk:a:budget": ("total", -3.0)}))
        await store.flush()
        name = store.budget_key("gk:a:budget", "total")
        fields = {k.decode(): float(v) for k, v in (await client.hgetall(name)).items()}
        assert fields == {"spent": 2.0, "reserved": 0.0}  # each really cost 1; nothing released
        assert not (
            await store.admit(
                Admission(
                    request_id="r3",
                    budgets=(BudgetCheck(key="gk:a:budget", limit=10.0, period="total", amount=8.5),),
                )
            )
        ).allowed
    finally:
        await store.close()
        await client.aclose()


async def test_a_clear_while_redis_is_down_is_sent_in_order(prefix: str) -> None:
    """Marks queued before a clear are dropped by it; a mark queued after it is kept."""
    proxy = Proxy()
    await proxy.start()
    store = await _store(prefix, addr=f"127.0.0.1:{proxy.port}", flush_interval=3600, io_timeout=0.5)
    direct = await _store(prefix, flush_interval=3600)
    try:
        now = time.time()
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 600))
        await proxy.stop()
        await store.mark_cooldown(CooldownMark(provider="p", key="a", until=now + 600))
        assert store.outage.down
        await store.clear_cooldown("p", "a")
        await store.clear_cooldown("p", "sent")
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 30, reason="after"))
        assert {m.key for m in await store.cooldowns()} == {"sent"}  # this process's view meanwhile
        await proxy.start()
        await store.flush(probe=True)
        marks = {m.key: m for m in await direct.cooldowns()}
        assert set(marks) == {"sent"} and marks["sent"].reason == "after"
        assert marks["sent"].until == pytest.approx(now + 30)
        # a clear queued in an outage that has just ended (not flushed yet) still goes before a new mark
        await proxy.stop()
        await store.mark_cooldown(CooldownMark(provider="p", key="x", until=now + 5))  # the outage starts
        assert store.outage.down
        await store.clear_cooldown("p", "sent")
        await proxy.start()
        assert (await store.ready())["ok"] is True and not store.outage.down
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 20, reason="newest"))
        await store.flush()
        marks = {m.key: m for m in await direct.cooldowns()}
        assert marks["sent"].reason == "newest"
    finally:
        await store.close()
        await direct.close()
        await proxy.stop()


async def test_retention_option() -> None:
    assert decode_options({"usage_retention": "90d"}, RedisStore.Options).usage_retention == 90 * 86400
    assert RedisStore.Options().usage_retention == 400 * 86400
    for bad in ("0s", 0):
        with pytest.raises(Exception, match="usage_retention"):
            decode_options({"usage_retention": bad}, RedisStore.Options)


async def test_state_values_are_plain_strings_under_the_prefix(prefix: str) -> None:
    """A state value is one string key, ``<prefix>state:<name>`` (no hash tag of the store's own:
    values spread over a cluster's slots), written with ``PX`` and shared by every process."""
    one, two = await _store(prefix, flush_interval=3600), await _store(prefix, flush_interval=3600)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await one.put_state("responses:team-a:resp_1", b"\x00value", 90.5)
        assert await two.get_state("responses:team-a:resp_1") == b"\x00value"
        key = f"{prefix}state:responses:team-a:resp_1"
        assert await client.get(key) == b"\x00value"
        assert 90_000 < await client.pttl(key) <= 90_500
        assert [k.decode() async for k in client.scan_iter(match=prefix + "*")] == [key]
        assert await two.delete_state("responses:team-a:resp_1") is True
        assert await client.exists(key) == 0
    finally:
        await one.close()
        await two.close()
        await client.aclose()


async def test_a_state_call_that_times_out_raises_and_counts_as_slow() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(RedisStore.Options(addr=f"127.0.0.1:{port}", io_timeout=0.1, flush_interval=3600))
    await store.start()  # times out: starts degraded
    store.outage.since = None  # pretend it was up
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.get_state("n")
        assert not store.outage.down  # one slow answer is not an outage
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
