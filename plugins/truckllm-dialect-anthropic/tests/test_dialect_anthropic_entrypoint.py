"""The ``dialect-anthropic`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import pytest
import truckllm_dialect_anthropic

from truckllm._internal.dialect import InboundDialect
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION

ENTRY_POINT = "dialect-anthropic"


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_dialect() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_dialect_anthropic
    assert truckllm_dialect_anthropic.TRUCKLLM_API == HOOKSPEC_VERSION
    assert not [f for f in host.failures if f.name == ENTRY_POINT]
    dialect = host.dialects["anthropic"]
    assert isinstance(dialect, InboundDialect) and dialect.name == "anthropic"
    assert [(r.path, r.endpoint, r.methods) for r in dialect.routes] == [
        ("/v1/messages", "chat", ("POST",)),
        ("/v1/messages/count_tokens", "count_tokens", ("POST",)),
    ]
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-dialect-anthropic"]
    assert row["entry_point"] == f"{ENTRY_POINT} = truckllm_dialect_anthropic"
    assert row["hooks"] == ["register_dialects"]


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=[ENTRY_POINT])
    assert host.pm.get_plugin(ENTRY_POINT) is None
    assert "anthropic" not in host.dialects
