"""The ``dialect-batches`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import pytest
import truckllm_batches

from truckllm._internal.dialect import InboundDialect
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION

ENTRY_POINT = "dialect-batches"


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_dialect() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_batches
    assert truckllm_batches.TRUCKLLM_API == HOOKSPEC_VERSION
    assert not [f for f in host.failures if f.name == ENTRY_POINT]
    dialect = host.dialects["batches"]
    assert isinstance(dialect, InboundDialect) and dialect.name == "batches"
    assert {(r.path, r.methods, r.upload) for r in dialect.routes if r.endpoint == "local"} == {
        ("/v1/files", ("POST",), True),
        ("/v1/files", ("GET",), False),
        ("/v1/files/{file_id}", ("GET", "DELETE"), False),
        ("/v1/files/{file_id}/content", ("GET",), False),
        ("/v1/batches", ("GET", "POST"), False),
        ("/v1/batches/{batch_id}", ("GET",), False),
        ("/v1/batches/{batch_id}/cancel", ("POST",), False),
    }
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-batches"]
    assert row["hooks"] == ["register_dialects", "register_loggers"]
    assert host.loggers["batches"] is truckllm_batches.BatchPoller  # the poller: loggers: [batches]


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=[ENTRY_POINT])
    assert host.pm.get_plugin(ENTRY_POINT) is None
    assert "batches" not in host.dialects
