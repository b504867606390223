"""The package loads through its entry point, registers its logger class, and the logger is a
request log with figures."""

from __future__ import annotations

import truckllm_logger_sql
from truckllm_logger_sql import SqlLogger

from truckllm._internal.plugins import make_plugin_manager
from truckllm.kit.request_log import RequestLog
from truckllm.types import LoggerCounters, LoggerMetrics


def test_entry_point_registers_sql_logger() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("logger-sql") is truckllm_logger_sql
    assert host.loggers["sql"] is SqlLogger
    assert host.owners[("loggers", "sql")] == "logger-sql"
    assert host.dists["logger-sql"].metadata["name"] == "truckllm-logger-sql"


def test_instance_hooks_and_protocols(tmp_path: object) -> None:
    host = make_plugin_manager(autoload=False)
    instance = SqlLogger(SqlLogger.Options())
    host.pm.register(instance, name="sql-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["emit_log", "shutdown", "startup"]
    assert isinstance(instance, RequestLog)
    assert isinstance(instance, LoggerMetrics) and isinstance(instance, LoggerCounters)
    assert {"queued", "written", "dropped", "spilled", "failed_batches", "db_up"} <= set(instance.metrics)
    assert truckllm_logger_sql.TRUCKLLM_API == 1
