"""The package loads through its entry point: the ``mcp`` component and the ``/mcp`` mount."""

from __future__ import annotations

import truckllm_mcp
from truckllm_mcp import PREFIX, McpGateway, McpOptions

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_the_component_and_the_mount() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("mcp") is truckllm_mcp
    assert host.loggers["mcp"] is McpGateway
    mount = host.mounts["mcp"]
    assert mount.prefix == PREFIX == "/mcp" and mount.auth == "gateway_key"
    assert host.dists["mcp"].metadata["name"] == "truckllm-mcp"
    assert truckllm_mcp.TRUCKLLM_API == 1


def test_instance_hooks_register_with_the_manager() -> None:
    host = make_plugin_manager(autoload=False)
    instance = McpGateway(McpOptions(servers={}))
    host.pm.register(instance, name="mcp-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_log", "render_metrics", "shutdown", "startup"]
