"""The package loads through its entry point and registers its logger class."""

from __future__ import annotations

import pytest
import truckllm_logger_prometheus
from truckllm_logger_prometheus import PrometheusLogger

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_prometheus_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-prometheus") is truckllm_logger_prometheus
    assert host.loggers["prometheus"] is PrometheusLogger
    assert host.owners[("loggers", "prometheus")] == "logger-prometheus"
    assert host.dists["logger-prometheus"].metadata["name"] == "truckllm-logger-prometheus"


def test_instance_answers_render_metrics_through_the_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    host = make_plugin_manager(autoload=False)
    instance = PrometheusLogger(PrometheusLogger.Options())
    host.pm.register(instance, name="prometheus-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_alert", "emit_log", "render_metrics", "shutdown", "startup"]
    (text,) = [t for t in host.hook.render_metrics() if t]
    assert b"# TYPE truckllm_requests_total counter" in text
    assert truckllm_logger_prometheus.TRUCKLLM_API == 1
