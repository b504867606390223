"""The plugin is found through its entry point and registers ``vertex`` and ``vertex-anthropic``."""

from __future__ import annotations

from importlib.metadata import entry_points

import truckllm_provider_vertex as vertex
from truckllm_provider_vertex.credentials import GoogleTokenSource
from truckllm_provider_vertex.options import AnthropicVertexOptions, VertexOptions

from truckllm._internal.plugins import make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.types import ChatRequest, Provider, ProviderSpec, UpstreamResponse


def test_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="truckllm") if ep.name == "provider-vertex"]
    assert ep.value == "truckllm_provider_vertex"
    assert ep.load() is vertex
    assert vertex.TRUCKLLM_API == HOOKSPEC_VERSION


def test_loaded_by_the_kernel() -> None:
    host = make_plugin_manager(autoload=True)
    gemini, claude = host.providers["vertex"], host.providers["vertex-anthropic"]
    assert (gemini.dialect, gemini.options) == ("gemini", VertexOptions)
    assert (claude.dialect, claude.options) == ("anthropic", AnthropicVertexOptions)
    assert gemini.endpoints == frozenset({"chat", "completions", "images.generations"})
    assert claude.endpoints == frozenset({"chat", "completions", "count_tokens"})
    for spec in (gemini, claude):
        assert spec.needs_keys is False  # no key: application default credentials
        assert spec.credentials is vertex.token_source


def test_register_providers() -> None:
    specs: list[ProviderSpec] = []
    vertex.register_providers(register=specs.append)
    assert [s.type for s in specs] == ["vertex", "vertex-anthropic"]


def test_the_credential_factory_makes_one_token_source_per_key() -> None:
    provider = Provider(name="vx", type="vertex", base_url="")
    first, second = vertex.token_source(provider, ""), vertex.token_source(provider, "")
    assert isinstance(first, GoogleTokenSource) and first is not second
    assert first.current() == ""  # nothing fetched on construction
    assert "<secret>" in repr(vertex.token_source(provider, '{"private_key": "-----BEGIN"}'))
    assert "BEGIN" not in repr(vertex.token_source(provider, '{"private_key": "-----BEGIN"}'))


def test_other_provider_types_are_not_ours() -> None:
    for other_type in ("gemini", "anthropic", "openai"):
        other = Provider(name="x", type=other_type, base_url="http://x")
        request = ChatRequest(endpoint="chat", body=b"{}", model="m")
        response = UpstreamResponse(status=200)
        assert vertex.transform_request(provider=other, model="m", request=request, api_key="k") is None
        assert vertex.transform_response(provider=other, request=request, response=response) is None
        assert vertex.transform_stream(provider=other, request=request, response=response) is None
        assert vertex.parse_usage(provider=other, request=request, body=b"{}") is None
