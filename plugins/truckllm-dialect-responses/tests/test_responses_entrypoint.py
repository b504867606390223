"""The ``dialect-responses`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import pytest
import truckllm_dialect_responses

from truckllm._internal.dialect import InboundDialect
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION

ENTRY_POINT = "dialect-responses"


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_dialect() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_dialect_responses
    assert truckllm_dialect_responses.TRUCKLLM_API == HOOKSPEC_VERSION
    assert not [f for f in host.failures if f.name == ENTRY_POINT]
    dialect = host.dialects["responses"]
    assert isinstance(dialect, InboundDialect) and dialect.name == "responses"
    assert dialect.reframes_own is True  # every answer is seen, pass-through ones too
    assert callable(getattr(dialect, "prepare", None)) and callable(getattr(dialect, "serve_local", None))
    assert [(r.path, r.endpoint, r.methods) for r in dialect.routes] == [
        ("/v1/responses", "chat", ("POST",)),
        ("/v1/responses/input_tokens", "count_tokens", ("POST",)),
        ("/v1/responses/{response_id}", "local", ("GET", "DELETE")),
        ("/v1/responses/{response_id}/cancel", "local", ("POST",)),
        ("/v1/responses/{response_id}/input_items", "local", ("GET",)),
    ]
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-dialect-responses"]
    assert row["entry_point"] == f"{ENTRY_POINT} = truckllm_dialect_responses"
    assert row["hooks"] == ["register_dialects"]


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=[ENTRY_POINT])
    assert host.pm.get_plugin(ENTRY_POINT) is None
    assert "responses" not in host.dialects
