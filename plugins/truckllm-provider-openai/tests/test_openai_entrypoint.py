"""The plugin loads through its entry point like any third-party plugin."""

from __future__ import annotations

import truckllm_provider_openai

from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_entry_point_registers_the_openai_provider_type() -> None:
    host = make_plugin_manager()
    spec = host.providers["openai"]
    assert spec.default_base_url == "https://api.openai.com/v1"
    assert {
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
    } <= spec.endpoints  # and others' (images, moderations, rerank, files and batches)
    assert spec.passes_through == {"responses"}  # Responses API requests go upstream as they came
    assert host.pm.get_plugin("provider-openai") is truckllm_provider_openai
    row = next(r for r in list_plugins(host) if r["name"] == "truckllm-provider-openai")
    assert {"transform_request", "transform_response", "transform_stream", "parse_usage"} <= set(row["hooks"])
