"""The ``strategy-header`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_header as plugin

from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION


def test_entry_point_registers_the_strategy() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("strategy-header") is plugin
    assert plugin.TRUCKLLM_API == HOOKSPEC_VERSION
    assert "x-truckllm-prefer" in host.strategies["header"].description
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-strategy-header"]
    assert row["status"] == "loaded"
    assert row["entry_point"] == "strategy-header = truckllm_strategy_header"
    assert row["hooks"] == ["register_strategies", "select_provider"]


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=["strategy-header"], autoload=True)
    assert host.pm.get_plugin("strategy-header") is None and "header" not in host.strategies
