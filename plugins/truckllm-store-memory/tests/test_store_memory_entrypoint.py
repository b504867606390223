"""The ``store-memory`` entry point loads through the kernel and registers ``type: memory``."""

from __future__ import annotations

from truckllm_store_memory import TRUCKLLM_API, MemoryStore

from truckllm import HOOKSPEC_VERSION
from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_store_class() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.stores["memory"] is MemoryStore
    assert host.owners[("stores", "memory")] == "store-memory"
    assert TRUCKLLM_API == HOOKSPEC_VERSION
    row = next(
        r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("store-memory ")
    )
    assert row["name"] == "truckllm-store-memory"
    assert row["module"] == "truckllm_store_memory"
    assert "register_stores" in row["hooks"]


def test_store_class_has_the_store_shape() -> None:
    assert MemoryStore.name == "memory"
    for method in ("start", "close", "admit", "settle", "mark_cooldown", "cooldowns", "usage", "ready"):
        assert callable(getattr(MemoryStore, method)), method
    assert callable(MemoryStore.store_usage)
