"""The plugin loads through its entry point like any third-party plugin."""

from __future__ import annotations

from pathlib import Path

import truckllm_provider_azure

from truckllm._internal.config.loader import load_config
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
        "audio.transcriptions",
        "audio.translations",
        "audio.speech",
        "images.edits",
        "images.generations",
    }
    assert spec.passes_through == {"responses"}
    assert spec.credentials is not None
    assert host.pm.get_plugin("provider-azure") is truckllm_provider_azure
    row = next(r for r in list_plugins(host) if r["name"] == "truckllm-provider-azure")
    assert {"transform_request", "transform_response", "transform_stream", "parse_usage"} <= set(row["hooks"])


def test_the_readme_configuration_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("```yaml\n") + len("```yaml\n")
    path = tmp_path / "config.yaml"
    path.write_text(readme[start : readme.index("```", start)])
    env = {
        name: "x"
        for name in ("AZURE_OPENAI_KEY_1", "AZURE_OPENAI_KEY_2", "AZURE_TENANT_ID", "AZURE_CLIENT_ID")
    }
    config = load_config(str(path), make_plugin_manager().registry(), env={**env, "AZURE_CLIENT_SECRET": "s"})
    options = {name: entry.options for name, entry in config.providers.items()}
    assert options["azure-east"] == truckllm_provider_azure.Options(api_version="2024-10-21")
    assert options["azure-v1"] == truckllm_provider_azure.Options(api="v1", auth="entra")
    assert options["azure-sp"] == truckllm_provider_azure.Options(auth="entra")
