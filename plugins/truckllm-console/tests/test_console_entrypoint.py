"""The package loads through its entry point and mounts the console at /console."""

from __future__ import annotations

import truckllm_console

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_the_console_mount() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("console") is truckllm_console
    mount = host.mounts["console"]
    assert mount.prefix == "/console"
    assert mount.login == "/login"
    assert mount.public == ("/login", "/static/")
    assert mount.is_public("/static/console.css") and not mount.is_public("/requests")
    assert host.dists["console"].metadata["name"] == "truckllm-console"
    assert truckllm_console.TRUCKLLM_API == 1
