"""Each store plugin as the kernel builds it: from a ``store:`` config section, registered as a plugin."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from truckllm._internal.components import attach, build_store
from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.store import StateStore, Store, UsageQuery
from truckllm.errors import StartupError
from truckllm_testing.store_conformance import make_records
from truckllm_testing.store_server import LocalStore, StoreServer


def _section(kind: str, tmp_path: Path, url: str) -> str:
    return {
        "memory": "store: {type: memory}",
        "file": f"store: {{type: file, path: '{tmp_path / 'state.db'}', flush_interval: 250ms}}",
        "redis": f"store: {{type: redis, addr: '127.0.0.1:6379', prefix: 'truckllm-test-{uuid.uuid4().hex[:8]}:', "
        "timeout: 50ms, password: '${REDIS_PASSWORD:-}'}",
        "http": f"store: {{type: http, url: '{url}', token: t0ken, timeout: 200ms}}",
    }[kind]


@pytest.mark.parametrize("kind", ["memory", "file", pytest.param("redis", marks=pytest.mark.redis), "http"])
async def test_kernel_builds_starts_and_feeds_the_store(kind: str, tmp_path: Path) -> None:
    server = StoreServer(LocalStore(), token="t0ken")
    url = await server.start()
    host = make_plugin_manager(autoload=True)
    config = parse_config(_section(kind, tmp_path, url), host.registry(), env={})
    store = build_store(host, config)
    assert isinstance(store, Store) and store.name == kind
    await store.start()
    try:
        attach(host, store, [])
        records = make_records(n=4)
        for record in records:
            for result in host.hook.store_usage(record=record):
                assert result is None
        await store.flush()  # type: ignore[attr-defined]
        if kind != "redis":  # redis keeps usage under a per-test prefix: read back in its own tests
            assert (await store.usage(UsageQuery())).total.requests == 4
        assert (await store.ready())["ok"] is True
        assert isinstance(store, StateStore)  # every built-in store keeps stateful dialects' values
        await store.put_state("responses:team-a:resp_1", b'{"id": "resp_1"}', 60.0)
        assert await store.get_state("responses:team-a:resp_1") == b'{"id": "resp_1"}'
        assert await store.delete_state("responses:team-a:resp_1") is True
    finally:
        await store.close()
        await server.stop()
        if kind == "redis":
            await _delete_keys(store.options.prefix)  # type: ignore[attr-defined]


async def _delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def test_unknown_store_option_is_a_startup_error(tmp_path: Path) -> None:
    host = make_plugin_manager(autoload=True)
    with pytest.raises(StartupError, match=r"store\.pth: unknown field"):
        parse_config("store: {type: file, pth: x.db}", host.registry(), env={})
    with pytest.raises(StartupError, match="flush_interval"):
        parse_config("store: {type: redis, flush_interval: soon}", host.registry(), env={})
