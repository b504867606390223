"""The package loads through its entry point and registers its logger class."""

from __future__ import annotations

import truckllm_logger_webhook
from truckllm_logger_webhook import WebhookLogger

from truckllm._internal.plugins import make_plugin_manager


def test_entry_point_registers_webhook_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-webhook") is truckllm_logger_webhook
    assert host.loggers["webhook"] is WebhookLogger
    assert host.owners[("loggers", "webhook")] == "logger-webhook"
    assert host.dists["logger-webhook"].metadata["name"] == "truckllm-logger-webhook"


def test_instance_hooks_register_with_the_manager() -> None:
    host = make_plugin_manager(autoload=False)
    instance = WebhookLogger(WebhookLogger.Options(url="https://logs.example.com/in"))
    host.pm.register(instance, name="webhook-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_alert", "emit_log", "shutdown", "startup"]
    assert truckllm_logger_webhook.TRUCKLLM_API == 1
