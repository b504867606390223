"""The ``provider-anthropic`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import msgspec
import pytest
import truckllm_provider_anthropic

from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION

ENTRY_POINT = "provider-anthropic"
HOOKS = ["parse_usage", "register_providers", "transform_request", "transform_response", "transform_stream"]


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_provider_type() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_provider_anthropic
    assert truckllm_provider_anthropic.TRUCKLLM_API == HOOKSPEC_VERSION
    assert not [f for f in host.failures if f.name == ENTRY_POINT]
    spec = host.providers["anthropic"]
    assert spec.dialect == "anthropic" and spec.options is truckllm_provider_anthropic.Options
    assert host.owners[("providers", "anthropic")] == ENTRY_POINT
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-provider-anthropic"]
    assert row["entry_point"] == f"{ENTRY_POINT} = truckllm_provider_anthropic"
    assert row["hooks"] == HOOKS


def test_disabled_entry_point_is_not_loaded() -> None:
    host = make_plugin_manager(disabled=[ENTRY_POINT])
    assert host.pm.get_plugin(ENTRY_POINT) is None
    assert "anthropic" not in host.providers


def test_options_are_decoded_strictly_from_config() -> None:
    from truckllm._internal.config.loader import decode_options

    options = decode_options(
        {
            "max_tokens": 8000,
            "beta": ["x"],
            "json_mode": "output_config",
            "max_tokens_by_model": {"claude-3": 4096},
        },
        truckllm_provider_anthropic.Options,
    )
    assert options.max_tokens == 8000 and options.beta == ("x",) and options.json_mode == "output_config"
    assert options.default_max_tokens("claude-3-haiku") == 4096
    with pytest.raises(msgspec.ValidationError):
        decode_options({"max_token": 1}, truckllm_provider_anthropic.Options)
    with pytest.raises(msgspec.ValidationError):
        decode_options({"json_mode": "prompt"}, truckllm_provider_anthropic.Options)
