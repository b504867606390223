"""The package loads through its entry point and registers its logger class."""

from __future__ import annotations

import truckllm_logger_stdout
from truckllm_logger_stdout import StdoutLogger

from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_stdout_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-stdout") is truckllm_logger_stdout
    assert host.loggers["stdout"] is StdoutLogger
    assert host.owners[("loggers", "stdout")] == "logger-stdout"
    row = next(
        r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("logger-stdout")
    )
    assert row["name"] == "truckllm-logger-stdout"
    assert row["hooks"] == ["register_loggers"]


def test_instance_hooks_register_with_the_manager() -> None:
    host = make_plugin_manager(autoload=False)
    instance = StdoutLogger(StdoutLogger.Options())
    host.pm.register(instance, name="stdout-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_alert", "emit_log", "shutdown", "startup"]
    assert truckllm_logger_stdout.TRUCKLLM_API == 1
