"""The redis store over TLS (``rediss://``, a CA file) as an ACL user limited to its own keys, on a
redis-server of its own (certificates made here); and the options of every topology."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from loguru import logger
from truckllm_store_redis import RedisStore

from truckllm._internal.config.loader import decode_options
from truckllm._internal.secrets import Secret
from truckllm._internal.store import Admission, BudgetCheck, CooldownMark, RateCheck
from truckllm_testing.redis_servers import (
    RedisProcess,
    TlsFiles,
    make_tls_files,
    require_redis_server,
    start_tls_server,
)
from truckllm_testing.store_conformance import StoreConformance, StoreHarness

USER, PASSWORD, ADMIN_PASSWORD = "truckllm", "s3cret-Pa55word", "admin-Pa55word"
READER = "truckllm-reader"
"""A user of the same keys who may read and run scripts but not write (a mistaken ACL)."""
KEYS = "truckllm-acl:"
"""The user's keys and channels: only under this prefix."""


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[RedisProcess]:
    """TLS only; ``default`` needs a password, the store's user reaches its own keys and channels
    only, with the command groups it needs (no ``@admin``, no ``@dangerous``)."""
    require_redis_server()
    process = start_tls_server(
        tmp_path_factory.mktemp("redis-tls"),
        tls_files,
        "--user",
        USER,
        "on",
        f">{PASSWORD}",
        f"~{KEYS}*",
        f"&{KEYS}*",
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@pubsub",
        "+@transaction",
        "+@connection",
        "+time",  # the scripts read Redis's clock
        "-@dangerous",
        "--user",
        READER,
        "on",
        f">{PASSWORD}",
        f"~{KEYS}*",
        f"&{KEYS}*",
        "-@all",
        "+@read",
        "+@scripting",
        "+@connection",
        "+time",
        "--user",
        "default",
        "on",
        f">{ADMIN_PASSWORD}",
        "~*",
        "&*",
        "+@all",
    )
    yield process
    process.stop()


def _admin(server: RedisProcess, tls_files: TlsFiles) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        f"rediss://127.0.0.1:{server.port}/0", password=ADMIN_PASSWORD, ssl_ca_certs=str(tls_files.ca)
    )


@pytest.fixture
async def prefix(server: RedisProcess, tls_files: TlsFiles) -> AsyncIterator[str]:
    """A key prefix of this test's own (inside the user's keys); deleted afterwards."""
    value = f"{KEYS}{uuid.uuid4().hex[:12]}:"
    yield value
    client = _admin(server, tls_files)
    try:
        keys = [key async for key in client.scan_iter(match=value + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _options(server: RedisProcess, tls_files: TlsFiles, **options: Any) -> RedisStore.Options:
    values: dict[str, Any] = {
        "url": f"rediss://127.0.0.1:{server.port}/0",
        "ca_file": str(tls_files.ca),
        "username": USER,
        "password": Secret(PASSWORD),
    }
    return RedisStore.Options(**(values | options))


async def _store(server: RedisProcess, tls_files: TlsFiles, **options: Any) -> RedisStore:
    store = RedisStore(_options(server, tls_files, **options))
    await store.start()
    return store


class TestRedisTlsAclConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(
        self, server: RedisProcess, tls_files: TlsFiles, prefix: str
    ) -> AsyncIterator[StoreHarness]:
        async def reopen() -> RedisStore:
            store = await _store(server, tls_files, prefix=prefix, flush_interval=3600, timeout=1.0)
            assert not store.outage.down, store.outage.error
            return store

        async def lose_data() -> None:
            client = _admin(server, tls_files)
            try:
                keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()

        async def state_ttl(name: str) -> float | None:
            client = _admin(server, tls_files)
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


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every message logged (any level) while the test runs, formatted with its extras."""
    messages: list[str] = []
    sink = logger.add(
        lambda m: messages.append(str(m)), level="DEBUG", format="{message} {extra} {exception}"
    )
    yield messages
    logger.remove(sink)


ADMISSION = Admission(
    request_id="r1",
    rates=(RateCheck(key="gk:a:rpm", rate=5),),
    budgets=(BudgetCheck(key="gk:a:budget", limit=1.0, period="total", amount=0.1),),
)


@pytest.mark.parametrize("form", ["url: rediss://", "addr and tls: true"])
async def test_tls_and_acl_user_work_end_to_end(
    server: RedisProcess, tls_files: TlsFiles, prefix: str, form: str
) -> None:
    where = {"url": None, "addr": f"127.0.0.1:{server.port}", "tls": True} if form.startswith("addr") else {}
    store = await _store(server, tls_files, prefix=prefix, flush_interval=3600, **where)
    try:
        decision = await store.admit(ADMISSION)
        assert decision.allowed and not decision.degraded
        await store.mark_cooldown(CooldownMark(provider="openai", key="k1", until=4e9, reason="429"))
        assert [m.key for m in await store.cooldowns()] == ["k1"]
        details = await store.ready()
        assert details["ok"] and details["addr"] == f"127.0.0.1:{server.port}"
        client = _admin(server, tls_files)
        try:
            whoami = await client.client_list()
        finally:
            await client.aclose()
        users = [c["user"] for c in whoami]
        assert users.count(USER) >= store.options.max_connections  # the store's pool is the ACL user's
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("case", "options", "error"),
    [
        ("a wrong password", {"password": Secret("not-" + PASSWORD)}, "invalid username-password"),
        ("no CA file: the server's CA is unknown", {"ca_file": None}, "certificate verify failed"),
        ("plain TCP to a TLS port", {"url": None, "addr": "127.0.0.1:{port}"}, ""),
        ("keys outside the user's", {"prefix": "elsewhere:"}, "permission"),
        ("a user who may not write", {"username": READER}, "can't run this command"),
    ],
)
async def test_refused_connections_answer_degraded_and_never_show_the_password(
    server: RedisProcess,
    tls_files: TlsFiles,
    prefix: str,
    logged: list[str],
    case: str,
    options: dict[str, Any],
    error: str,
) -> None:
    """What Redis refuses (authentication, certificate, TLS itself, ACL) is an outage: requests are
    answered degraded (budgets denied), ``ready()`` says why, and the password is nowhere."""
    options = {k: (v.format(port=server.port) if isinstance(v, str) else v) for k, v in options.items()}
    store = await _store(server, tls_files, **({"prefix": prefix, "io_timeout": 1.0} | options))
    try:
        decision = await store.admit(ADMISSION)
        assert decision.degraded and not decision.allowed and decision.kind == "budget"
        assert store.outage.down and error.lower() in str(store.outage.error).lower()
        details = await store.ready()  # its probe does what an admit does: a PING would pass
        assert details["ok"] is False
        assert error.lower() in str(details["error"]).lower()
        assert any("unreachable" in m for m in logged)  # the outage was logged
        for text in (repr(details), repr(store.options), str(store.options), *logged):
            assert PASSWORD not in text and ADMIN_PASSWORD not in text
    finally:
        await store.close()


def test_topology_options_decode_and_contradictions_are_refused(tmp_path: Path) -> None:
    cluster = decode_options({"cluster": True, "nodes": ["10.0.0.1:7000", "[::1]:7001"]}, RedisStore.Options)
    assert cluster.cluster and cluster.nodes == ["10.0.0.1:7000", "[::1]:7001"]
    assert RedisStore(cluster).where == "cluster 10.0.0.1:7000,[::1]:7001"
    assert RedisStore(cluster).mode == "cluster"
    sentinel = decode_options(
        {
            "sentinel": {"master": "main", "nodes": ["s1:26379", "s2"], "password": "sentinel-pw"},
            "password": "pw",
        },
        RedisStore.Options,
    )
    assert sentinel.sentinel is not None and isinstance(sentinel.sentinel.password, Secret)
    assert "sentinel-pw" not in repr(sentinel) and RedisStore(sentinel).where == "sentinel main@s1:26379,s2"
    tls = decode_options(
        {"addr": "r:6380", "tls": True, "ca_file": str(tmp_path / "ca.pem")}, RedisStore.Options
    )
    assert tls.tls and tls.ca_file == str(tmp_path / "ca.pem")
    refused = [
        ({"cluster": True, "sentinel": {"master": "m", "nodes": ["s:1"]}}, "exclude"),
        ({"nodes": ["a:1"]}, "cluster: true"),
        ({"cluster": True, "db": 2}, "database 0"),
        ({"sentinel": {"master": "", "nodes": ["s:1"]}}, "master"),
        ({"sentinel": {"master": "m", "nodes": []}}, "at least one"),
        ({"cluster": True, "nodes": ["a:port"]}, "host:port"),
        ({"sentinel": {"master": "m", "nodes": ["s:1"], "extra": 1}}, "unknown"),
        ({"max_connections": 0}, "max_connections"),
    ]
    for options, message in refused:
        with pytest.raises(Exception, match=message):
            decode_options(options, RedisStore.Options)


async def test_cooldown_push_over_tls_on_the_users_channel(
    server: RedisProcess, tls_files: TlsFiles, prefix: str
) -> None:
    one = await _store(server, tls_files, prefix=prefix)
    two = await _store(server, tls_files, prefix=prefix)
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
