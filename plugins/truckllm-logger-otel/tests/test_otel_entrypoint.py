"""The package loads through its entry point and registers its logger class."""

from __future__ import annotations

import truckllm_logger_otel
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from truckllm_logger_otel import OtelLogger

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_otel_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-otel") is truckllm_logger_otel
    assert host.loggers["otel"] is OtelLogger
    assert host.owners[("loggers", "otel")] == "logger-otel"
    assert host.dists["logger-otel"].metadata["name"] == "truckllm-logger-otel"
    assert truckllm_logger_otel.TRUCKLLM_API == 1


async def test_instance_hooks_register_with_the_manager() -> None:
    host = make_plugin_manager(autoload=False)
    instance = OtelLogger(OtelLogger.Options(), exporter=InMemorySpanExporter())
    host.pm.register(instance, name="otel-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_log", "shutdown", "startup"]
    await instance.shutdown(app=None)
