"""The ``store-http`` entry point loads through the kernel and registers ``type: http``."""

from __future__ import annotations

from truckllm_store_http import TRUCKLLM_API, HttpStore

from truckllm import HOOKSPEC_VERSION
from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_store_class() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.stores["http"] is HttpStore
    assert host.owners[("stores", "http")] == "store-http"
    assert TRUCKLLM_API == HOOKSPEC_VERSION
    row = next(
        r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("store-http ")
    )
    assert row["name"] == "truckllm-store-http"
    assert row["module"] == "truckllm_store_http"
    assert "register_stores" in row["hooks"]


def test_store_class_has_the_store_shape() -> None:
    assert HttpStore.name == "http"
    for method in ("start", "close", "admit", "settle", "mark_cooldown", "cooldowns", "usage", "ready"):
        assert callable(getattr(HttpStore, method)), method
    assert callable(HttpStore.store_usage)
