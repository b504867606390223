"""The plugin loads through its entry point like any third-party plugin."""

from __future__ import annotations

import truckllm_provider_azure

from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_azure_provider_type() -> None:
    host = make_plugin_manager()
    spec = host.providers["azure"]
    assert spec.default_base_url == ""  # every resource has its own endpoint
    assert spec.options is truckllm_provider_azure.Options
    assert spec.endpoints == {
        "chat",
        "completions",
        "embeddings",
        "count_tokens",
        "responses.retrieve",
        "responses.cancel",
    }
    assert spec.passes_through == {"responses"}
    assert spec.credentials is not None
    assert host.pm.get_plugin("provider-azure") is truckllm_provider_azure
    row = next(r for r in list_plugins(host) if r["name"] == "truckllm-provider-azure")
    assert {"transform_request", "transform_response", "transform_stream", "parse_usage"} <= set(row["hooks"])
