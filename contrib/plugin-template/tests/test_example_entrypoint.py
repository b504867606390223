"""The plugin loads through its entry point, like any installed plugin."""

from __future__ import annotations

from truckllm._internal.config.loader import parse_config
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm._internal.plugins import list_plugins, make_plugin_manager

import truckllm_provider_example as plugin


def test_entry_point_registers_the_provider_type() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("provider-example") is plugin
    assert plugin.TRUCKLLM_API == HOOKSPEC_VERSION
    spec = host.providers["example"]
    assert spec.options is plugin.Options and not spec.needs_keys
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-provider-example"]
    assert row["status"] == "loaded"
    assert row["entry_point"] == "provider-example = truckllm_provider_example"


def test_a_config_can_use_it() -> None:
    host = make_plugin_manager(autoload=True)
    config = parse_config(
        "providers:\n"
        "  local: {type: example, base_url: 'http://127.0.0.1:8000/v1', options: {default_max_tokens: 64}}\n"
        "models:\n"
        "  local: {deployments: [{provider: local, model: llama3}]}\n",
        host.registry(),
        env={},
    )
    assert config.providers["local"].type == "example"
