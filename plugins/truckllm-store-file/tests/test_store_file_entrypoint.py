"""The ``store-file`` entry point loads through the kernel and registers ``type: file``."""

from __future__ import annotations

from truckllm_store_file import TRUCKLLM_API, FileStore

from truckllm import HOOKSPEC_VERSION
from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_store_class() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.stores["file"] is FileStore
    assert host.owners[("stores", "file")] == "store-file"
    assert TRUCKLLM_API == HOOKSPEC_VERSION
    row = next(
        r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("store-file ")
    )
    assert row["name"] == "truckllm-store-file"
    assert row["module"] == "truckllm_store_file"
    assert "register_stores" in row["hooks"]


def test_store_class_has_the_store_shape() -> None:
    assert FileStore.name == "file"
    for method in ("start", "close", "admit", "settle", "mark_cooldown", "cooldowns", "usage", "ready"):
        assert callable(getattr(FileStore, method)), method
    assert callable(FileStore.store_usage)
