"""The plugin is found through its entry point and registers the ``gemini`` provider type."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import msgspec
import pytest
import truckllm_provider_gemini as gemini
from truckllm_provider_gemini.options import Options

from truckllm._internal.config.loader import decode_options
from truckllm._internal.plugins import make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.types import ChatRequest, Provider, ProviderSpec, UpstreamResponse


def test_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="truckllm") if ep.name == "provider-gemini"]
    assert ep.value == "truckllm_provider_gemini"
    assert ep.load() is gemini
    assert gemini.TRUCKLLM_API == HOOKSPEC_VERSION


def test_loaded_by_the_kernel() -> None:
    host = make_plugin_manager(autoload=True)
    spec = host.providers["gemini"]
    assert spec.default_base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert spec.dialect == "gemini"
    assert spec.endpoints == frozenset(
        {"chat", "completions", "embeddings", "count_tokens", "images.generations"}
    )
    assert spec.options is Options


def test_register_providers() -> None:
    specs: list[ProviderSpec] = []
    gemini.register_providers(register=specs.append)
    assert [s.type for s in specs] == ["gemini"]


def test_other_provider_types_are_not_ours() -> None:
    other = Provider(name="x", type="openai", base_url="http://x")
    request = ChatRequest(endpoint="chat", body=b"{}", model="m")
    response = UpstreamResponse(status=200)
    assert gemini.transform_request(provider=other, model="m", request=request, api_key="k") is None
    assert gemini.transform_response(provider=other, request=request, response=response) is None
    assert gemini.transform_stream(provider=other, request=request, response=response) is None
    assert gemini.parse_usage(provider=other, request=request, body=b"{}") is None


def test_options_decode_strictly() -> None:
    options: Any = decode_options(
        {"schema_mode": "json_schema", "thinking_budget_by_effort": {"low": 1, "high": "high"}}, Options
    )
    assert options.schema_mode == "json_schema"
    assert options.thinking("high") == "high"
    assert options.thinking("medium") == 8192  # the defaults still apply
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `nope`"):
        decode_options({"nope": 1}, Options)
    with pytest.raises(msgspec.ValidationError, match=r"`\$\.schema_mode`"):
        decode_options({"schema_mode": "wild"}, Options)
