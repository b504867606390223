"""The plugin loads through its entry point, and its README's configuration loads."""

from __future__ import annotations

from pathlib import Path

import truckllm_provider_cohere

from truckllm._internal.config.loader import load_config
from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_cohere_provider_type_for_rerank_only() -> None:
    host = make_plugin_manager()
    spec = host.providers["cohere"]
    assert spec.endpoints == {"rerank"}
    assert spec.default_base_url == truckllm_provider_cohere.DEFAULT_BASE_URL
    assert host.pm.get_plugin("provider-cohere") is truckllm_provider_cohere
    row = next(r for r in list_plugins(host) if r["name"] == "truckllm-provider-cohere")
    assert {"register_providers", "transform_request", "transform_response", "parse_usage"} <= set(
        row["hooks"]
    )


def test_the_readme_configuration_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("```yaml\n") + len("```yaml\n")
    path = tmp_path / "config.yaml"
    path.write_text(readme[start : readme.index("```", start)])
    env = {"COHERE_API_KEY": "x", "JINA_API_KEY": "x", "VOYAGE_API_KEY": "x"}
    config = load_config(str(path), make_plugin_manager().registry(), env=env)
    (provider,) = config.providers.values()
    assert provider.type == "cohere"
