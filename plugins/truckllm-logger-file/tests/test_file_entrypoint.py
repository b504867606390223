"""The package loads through its entry point and registers its logger class."""

from __future__ import annotations

import truckllm_logger_file
from truckllm_logger_file import FileLogger

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_file_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-file") is truckllm_logger_file
    assert host.loggers["file"] is FileLogger
    assert host.owners[("loggers", "file")] == "logger-file"
    assert host.dists["logger-file"].metadata["name"] == "truckllm-logger-file"


def test_instance_hooks_register_with_the_manager() -> None:
    host = make_plugin_manager(autoload=False)
    instance = FileLogger(FileLogger.Options())
    host.pm.register(instance, name="file-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_alert", "emit_log", "shutdown", "startup"]
    assert truckllm_logger_file.TRUCKLLM_API == 1
