"""The ``store-redis`` entry point loads through the kernel and registers ``type: redis``."""

from __future__ import annotations

from truckllm_store_redis import TRUCKLLM_API, RedisStore

from truckllm import HOOKSPEC_VERSION
from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_store_class() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.stores["redis"] is RedisStore
    assert host.owners[("stores", "redis")] == "store-redis"
    assert TRUCKLLM_API == HOOKSPEC_VERSION
    row = next(
        r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("store-redis ")
    )
    assert row["name"] == "truckllm-store-redis"
    assert row["module"] == "truckllm_store_redis"
    assert "register_stores" in row["hooks"]


def test_store_class_has_the_store_shape() -> None:
    assert RedisStore.name == "redis"
    for method in ("start", "close", "admit", "settle", "mark_cooldown", "cooldowns", "usage", "ready"):
        assert callable(getattr(RedisStore, method)), method
    assert callable(RedisStore.store_usage)
