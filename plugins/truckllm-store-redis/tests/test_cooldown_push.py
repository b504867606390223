"""Cooldown marks pushed to every process (issue 23): a mark or clear made through one store
reaches every other store's ``watch_cooldowns`` within one round trip, against the real Redis.

Also: what is not a push (malformed, hostile) is skipped and counted, a mark that changes nothing
is not pushed, marks kept through an outage are pushed when they are sent, and the subscription
ends as it should (``close()``: returns; a cut or silent connection: raises).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from truckllm_store_redis import RedisStore
from truckllm_store_redis.push import MAX_NAME, MAX_PUSH, MAX_REASON, decode_push, encode_clear, encode_mark

from truckllm._internal.config.durations import Duration
from truckllm._internal.store import CooldownMark
from truckllm._internal.tasks import stop_task

REDIS_URL = "redis://127.0.0.1:6379/0"
EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300"))
ARRIVES = 2.0
"""Seconds a push may take before a test fails (it takes about a millisecond)."""

_pack = msgspec.msgpack.encode


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield value
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=value + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _store(prefix: str, **options: Any) -> RedisStore:
    store = RedisStore(RedisStore.Options(prefix=prefix, flush_interval=Duration(3600), **options))
    await store.start()
    return store


class Feed:
    """What one ``watch_cooldowns`` applied, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[CooldownMark] = asyncio.Queue()

    def apply(self, mark: CooldownMark) -> None:
        self.queue.put_nowait(mark)

    async def next(self) -> CooldownMark:
        """The next mark applied (waited for on the queue, at most :data:`ARRIVES` seconds)."""
        async with asyncio.timeout(ARRIVES):
            return await self.queue.get()


@contextlib.asynccontextmanager
async def watching(store: RedisStore, feed: Feed | None = None) -> AsyncIterator[Feed]:
    """``store.watch_cooldowns`` running in a task, subscribed, for the block."""
    feed = feed or Feed()
    task = asyncio.create_task(store.watch_cooldowns(feed.apply))
    try:
        async with asyncio.timeout(ARRIVES):
            await store.subscribed.wait()
        yield feed
    finally:
        await stop_task(task)


class Gate:
    """A TCP proxy to Redis whose connections can be cut (closed) or silenced (kept open, every
    byte dropped: a dead peer behind a NAT)."""

    def __init__(self) -> None:
        self.port = 0
        self.silent = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (again: on the same port)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Close every connection (the server keeps accepting)."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        """Cut every connection and stop listening (connections are refused)."""
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if not self.silent:
                        dst.write(data)
                        await dst.drain()
            dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _raw_publish(channel: str, *messages: bytes) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        for message in messages:
            await client.publish(channel, message)
    finally:
        await client.aclose()


# --- the wire format, without Redis ---------------------------------------------------------------

_names = st.text(min_size=1, max_size=40).filter(lambda s: decode_push(encode_clear(s, "k")) is not None)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    provider=_names,
    key=_names,
    until=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    reason=st.text(max_size=400),
)
def test_every_mark_round_trips_and_its_reason_is_made_safe(
    provider: str, key: str, until: float, reason: str
) -> None:
    mark = CooldownMark(provider=provider, key=key, until=until, reason=reason)
    data = encode_mark(mark)
    assert len(data) <= MAX_PUSH
    decoded = decode_push(data)
    assert decoded is not None
    assert (decoded.provider, decoded.key, decoded.until) == (provider, key, until)
    assert len(decoded.reason) == min(len(reason), MAX_REASON)
    assert not any(c in decoded.reason for c in "\n\r\x00\x1b\x85\u2028\u2029")
    assert decode_push(encode_clear(provider, key)) == CooldownMark(provider=provider, key=key, until=0.0)


def _valid(mark: CooldownMark | None) -> bool:
    if mark is None:
        return True
    texts = (mark.provider, mark.key, mark.reason)
    return (
        math.isfinite(mark.until)
        and mark.until >= 0
        and 0 < len(mark.provider) <= MAX_NAME
        and 0 < len(mark.key) <= MAX_NAME
        and len(mark.reason) <= MAX_REASON
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for t in texts for c in t)
    )


_items = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=300),
    st.binary(max_size=20),
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=MAX_PUSH + 10),
        st.lists(_items, max_size=6).map(_pack),
        st.dictionaries(st.text(max_size=10), _items, max_size=4).map(_pack),
        st.tuples(st.text(max_size=300), st.text(max_size=300), _items, _items).map(_pack),
    ),
    flip=st.integers(min_value=0, max_value=255),
)
def test_decode_never_raises_and_lets_only_valid_marks_through(data: bytes, flip: int) -> None:
    assert _valid(decode_push(data))
    if data:  # one byte changed anywhere
        at = flip % len(data)
        assert _valid(decode_push(data[:at] + bytes([data[at] ^ (flip or 1)]) + data[at + 1 :]))


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "not msgpack": b"\xc1\xc1\xc1",
    "text": b"hello",
    "json": b'["openai","k1",1e12,"429"]',
    "a map": _pack({"provider": "openai", "key": "k1", "until": 1e12}),
    "too short": _pack(["openai", "k1"]),
    "until nan": _pack(["openai", "k1", math.nan, ""]),
    "until inf": _pack(["openai", "k1", math.inf, ""]),
    "until -inf": _pack(["openai", "k1", -math.inf, ""]),
    "until negative": _pack(["openai", "k1", -1.0, ""]),
    "until a string": _pack(["openai", "k1", "1e12", ""]),
    "until a bool": _pack(["openai", "k1", True, ""]),
    "until null": _pack(["openai", "k1", None, ""]),
    "provider empty": _pack(["", "k1", 1e12, ""]),
    "key empty": _pack(["openai", "", 1e12, ""]),
    "provider not a string": _pack([1, "k1", 1e12, ""]),
    "key bytes": _pack(["openai", b"k1", 1e12, ""]),
    "provider too long": _pack(["o" * (MAX_NAME + 1), "k1", 1e12, ""]),
    "key too long": _pack(["openai", "k" * (MAX_NAME + 1), 1e12, ""]),
    "reason too long": _pack(["openai", "k1", 1e12, "r" * (MAX_REASON + 1)]),
    "newline in the key": _pack(["openai", "k1\nINFO forged log line", 1e12, ""]),
    "escape in the provider": _pack(["\x1b[31mopenai", "k1", 1e12, ""]),
    "NEL in the reason": _pack(["openai", "k1", 1e12, "a\x85b"]),
    "U+2028 in the reason": _pack(["openai", "k1", 1e12, "a\u2028b"]),
    "reason not a string": _pack(["openai", "k1", 1e12, 429]),
    "nested": _pack([[[[[[[["openai"]]]]]]]]),
    "too big": _pack(["openai", "k1", 1e12, "", "x" * MAX_PUSH]),
    "msgpack ext": b"\xd4\x01\x00",
}


def test_every_hostile_message_is_refused_by_the_decoder() -> None:
    accepted = {name: decode_push(data) for name, data in HOSTILE.items() if decode_push(data) is not None}
    assert accepted == {}


# --- through Redis ---------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_mark_reaches_the_other_process_in_one_round_trip(prefix: str) -> None:
    one, two = await _store(prefix), await _store(prefix)
    try:
        assert key_slot(one.push_channel().encode()) == key_slot(f"{prefix}{{cooldowns}}:until".encode())
        async with watching(two) as theirs, watching(one) as ours:
            warm = CooldownMark(provider="openai", key="k0", until=time.time() + 30)
            await one.mark_cooldown(warm)  # Redis may not have the script cached yet (a SCRIPT LOAD)
            assert await theirs.next() == warm and await ours.next() == warm
            client = one._redis
            assert client is not None
            sent: list[str] = []
            original = client.execute_command

            async def counting(*args: object, **kwargs: object) -> object:
                sent.append(str(args[0]))
                return await original(*args, **kwargs)  # type: ignore[no-untyped-call]

            client.execute_command = counting  # type: ignore[method-assign]
            mark = CooldownMark(provider="openai", key="k1", until=time.time() + 30, reason="rate_limit")
            await one.mark_cooldown(mark)
            client.execute_command = original  # type: ignore[method-assign]
            assert sent == ["EVALSHA"]  # the write and the publish: one script, one round trip
            assert await theirs.next() == mark
            assert await ours.next() == mark  # its own marks too (applying is idempotent)
            assert [m.key for m in await two.cooldowns()] == ["k0", "k1"]  # and written, as before
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_clears_are_pushed_and_a_mark_that_changes_nothing_is_not(prefix: str) -> None:
    one, two = await _store(prefix), await _store(prefix)
    try:
        async with watching(two) as feed:
            now = time.time()
            await one.mark_cooldown(CooldownMark(provider="p", key="a", until=now + 60, reason="quota"))
            assert (await feed.next()).until == now + 60
            await one.mark_cooldown(CooldownMark(provider="p", key="a", until=now + 30))  # shorter
            await one.mark_cooldown(CooldownMark(provider="p", key="a", until=now - 5))  # over
            await one.mark_cooldown(CooldownMark(provider="p", key="a", until=math.nan))  # ignored
            await one.mark_cooldown(CooldownMark(provider="p", key="a", until=now + 90, reason="longer"))
            assert await feed.next() == CooldownMark(provider="p", key="a", until=now + 90, reason="longer")
            await two.clear_cooldown("p", "a")  # an operator's enable in the other process
            assert await feed.next() == CooldownMark(provider="p", key="a", until=0.0)
            await one.clear_cooldown("p", "never-marked")  # pushed anyway: cheap, and never wrong
            assert await feed.next() == CooldownMark(provider="p", key="never-marked", until=0.0)
            assert feed.queue.empty()
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_malformed_and_hostile_pushes_are_skipped_and_counted(prefix: str) -> None:
    store = await _store(prefix)
    try:
        async with watching(store) as feed:
            after = CooldownMark(provider="openai", key="k1", until=time.time() + 30, reason="rate_limit")
            await _raw_publish(store.push_channel(), *HOSTILE.values(), encode_mark(after))
            assert await feed.next() == after  # the subscription survived every one of them
            assert feed.queue.empty()
            assert store.push_skipped == len(HOSTILE)
            details = await store.ready()
            assert details["push_skipped"] == len(HOSTILE) and details["push_subscriptions"] == 1
    finally:
        await store.close()


@pytest.mark.redis
async def test_an_apply_that_raises_is_counted_and_the_watch_goes_on(prefix: str) -> None:
    store = await _store(prefix)
    feed = Feed()
    calls: list[str] = []

    def apply(mark: CooldownMark) -> None:
        calls.append(mark.key)
        if mark.key == "bad":
            raise RuntimeError("a gateway bug")
        feed.apply(mark)

    task = asyncio.create_task(store.watch_cooldowns(apply))
    try:
        async with asyncio.timeout(ARRIVES):
            await store.subscribed.wait()
        for key in ("bad", "good"):
            await store.mark_cooldown(CooldownMark(provider="p", key=key, until=time.time() + 30))
        assert (await feed.next()).key == "good"
        assert calls == ["bad", "good"] and store.push_skipped == 1 and not task.done()
    finally:
        await stop_task(task)
        await store.close()


@pytest.mark.redis
async def test_close_ends_the_watch_cleanly(prefix: str) -> None:
    store = await _store(prefix)
    feed = Feed()
    task = asyncio.create_task(store.watch_cooldowns(feed.apply))
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with asyncio.timeout(ARRIVES):
            await store.subscribed.wait()
        assert dict(await client.pubsub_numsub(store.push_channel())) == {store.push_channel().encode(): 1}
        await store.close()
        assert task.done() and task.result() is None  # close() waited for it to return
        assert not store.subscribed.is_set()
        async with asyncio.timeout(ARRIVES):  # Redis takes the disconnect in its own time
            while dict(await client.pubsub_numsub(store.push_channel()))[store.push_channel().encode()]:
                await asyncio.sleep(0.01)
        await store.watch_cooldowns(feed.apply)  # after close: returns at once
    finally:
        await stop_task(task)
        await client.aclose()


@pytest.mark.redis
async def test_a_degraded_store_returns_at_once(prefix: str) -> None:
    gate = Gate()
    await gate.start()
    store = await _store(prefix, addr=f"127.0.0.1:{gate.port}", io_timeout=0.5)
    try:
        await gate.stop()
        await store.mark_cooldown(CooldownMark(provider="p", key="k", until=time.time() + 30))
        assert store.outage.down
        async with asyncio.timeout(0.1):
            await store.watch_cooldowns(Feed().apply)
    finally:
        await store.close()


@pytest.mark.redis
async def test_a_cut_connection_ends_the_watch(prefix: str) -> None:
    gate = Gate()
    await gate.start()
    store = await _store(prefix, addr=f"127.0.0.1:{gate.port}", io_timeout=0.5)
    task = asyncio.create_task(store.watch_cooldowns(Feed().apply))
    try:
        async with asyncio.timeout(ARRIVES):
            await store.subscribed.wait()
        await gate.cut()
        with pytest.raises(RedisConnectionError):
            async with asyncio.timeout(ARRIVES):
                await task
        assert not store.subscribed.is_set()
    finally:
        if not task.done():
            await stop_task(task)
        await store.close()
        await gate.stop()


@pytest.mark.redis
async def test_a_silent_connection_is_found_by_a_ping_and_ends_the_watch(prefix: str) -> None:
    gate = Gate()
    await gate.start()
    store = await _store(prefix, addr=f"127.0.0.1:{gate.port}", io_timeout=0.3)
    store.watch_idle = 0.05
    direct = await _store(prefix)
    try:
        async with watching(store) as feed:
            await asyncio.sleep(0.5)  # ten idle periods: each ping is answered, the watch goes on
            mark = CooldownMark(provider="p", key="k", until=time.time() + 30)
            await direct.mark_cooldown(mark)
            assert await feed.next() == mark
        task = asyncio.create_task(store.watch_cooldowns(feed.apply))
        async with asyncio.timeout(ARRIVES):
            await store.subscribed.wait()
        gate.silent = True  # the connection stays open, nothing comes through
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):  # the ping got no answer
            async with asyncio.timeout(ARRIVES):
                await task
        assert time.monotonic() - started < 0.05 + 0.3 + 0.3  # idle, then the ping's io_timeout
    finally:
        await store.close()
        await direct.close()
        await gate.stop()


@pytest.mark.redis
async def test_marks_and_clears_kept_through_an_outage_are_pushed_when_sent(prefix: str) -> None:
    gate = Gate()
    await gate.start()
    store = await _store(prefix, addr=f"127.0.0.1:{gate.port}", io_timeout=0.5)
    direct = await _store(prefix)
    try:
        async with watching(direct) as feed:
            now = time.time()
            await store.mark_cooldown(CooldownMark(provider="p", key="x", until=now + 60))
            assert (await feed.next()).key == "x"
            await gate.stop()
            await store.mark_cooldown(CooldownMark(provider="p", key="y", until=now + 60, reason="quota"))
            await store.clear_cooldown("p", "x")
            assert store.outage.down and feed.queue.empty()
            await gate.start()
            await store.flush(probe=True)  # the outage ends: both are sent, the clear first
            assert await feed.next() == CooldownMark(provider="p", key="x", until=0.0)
            assert await feed.next() == CooldownMark(provider="p", key="y", until=now + 60, reason="quota")
    finally:
        await store.close()
        await direct.close()
        await gate.stop()


@pytest.mark.redis
async def test_propagation_delay(prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """50 marks through one store, each timed until the other store's watch applies it."""
    one, two = await _store(prefix), await _store(prefix)
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}

    def apply(mark: CooldownMark) -> None:
        arrived[mark.key] = time.perf_counter()
        waiting[mark.key].set()

    task = asyncio.create_task(two.watch_cooldowns(apply))
    delays: list[float] = []
    try:
        async with asyncio.timeout(ARRIVES):
            await two.subscribed.wait()
        for i in range(50):
            key = f"k{i}"
            waiting[key] = asyncio.Event()
            started = time.perf_counter()
            await one.mark_cooldown(CooldownMark(provider="p", key=key, until=time.time() + 30))
            async with asyncio.timeout(ARRIVES):
                await waiting[key].wait()
            delays.append(arrived[key] - started)
    finally:
        await stop_task(task)
        await one.close()
        await two.close()
    median, worst = statistics.median(delays), max(delays)
    with capsys.disabled():
        print(f"\ncooldown push, 50 marks: median {median * 1000:.2f} ms, max {worst * 1000:.2f} ms")
    assert worst < 0.5  # well within the gateway's 1 s poll, even on a loaded machine
