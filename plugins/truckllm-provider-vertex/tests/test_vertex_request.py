"""What is Vertex-specific in the calls the plugin builds: hosts and paths, the bearer token, the
Claude body's ``anthropic_version`` and missing ``model``; the rest is the reused translations'."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import truckllm_provider_anthropic as anthropic
import truckllm_provider_gemini as gemini
from truckllm_provider_anthropic.options import Options as AnthropicOptions
from truckllm_provider_gemini.options import Options as GeminiOptions

from truckllm.errors import UnsupportedRequest
from truckllm.types import Provider

CHAT: dict[str, Any] = {
    "model": "alias",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 50,
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOKEN = "ya29.test-token"  # the conftest kit's token
GOOGLE = "/v1/projects/my-project/locations/{location}/publishers/google/models/gemini-2.5-flash"
CLAUDE = "/v1/projects/my-project/locations/{location}/publishers/anthropic/models/claude-sonnet-4@20250514"


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("global", "https://aiplatform.googleapis.com"),
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
    ],
)
def test_gemini_urls_by_location(kit: Any, location: str, host: str) -> None:
    call = kit.upstream(CHAT, location=location)
    assert call.url == host + GOOGLE.format(location=location) + ":generateContent"
    assert not call.stream
    streamed = kit.upstream({**CHAT, "stream": True}, location=location)
    assert streamed.url == host + GOOGLE.format(location=location) + ":streamGenerateContent?alt=sse"
    assert streamed.stream


def test_base_url_replaces_the_host_only(kit: Any) -> None:
    call = kit.upstream(CHAT, base_url="https://vertex-proxy.internal", location="us-east5")
    assert (
        call.url == "https://vertex-proxy.internal" + GOOGLE.format(location="us-east5") + ":generateContent"
    )


def test_gemini_call_is_the_gemini_plugins_with_a_bearer_token(kit: Any) -> None:
    body = {**CHAT, "tools": TOOLS, "temperature": 0.3}
    call = kit.upstream(body, schema_mode="json_schema")
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in call.headers
    reference = gemini.transform_request(
        provider=Provider(
            name="g", type="gemini", base_url="https://x", options=GeminiOptions(schema_mode="json_schema")
        ),
        model="gemini-2.5-flash",
        request=kit.request(body),
        api_key="AIza-key",
    )
    assert reference is not None
    assert json.loads(call.body) == json.loads(reference.body)  # the options reached the translation


def test_claude_urls_and_body(kit: Any) -> None:
    call = kit.upstream(CHAT, type="vertex-anthropic", model="claude-sonnet-4@20250514", location="us-east5")
    assert (
        call.url
        == "https://us-east5-aiplatform.googleapis.com" + CLAUDE.format(location="us-east5") + ":rawPredict"
    )
    body = json.loads(call.body)
    assert next(iter(body)) == "anthropic_version"
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in body
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-api-key" not in call.headers and "anthropic-version" not in call.headers
    streamed = kit.upstream(
        {**CHAT, "stream": True}, type="vertex-anthropic", model="claude-sonnet-4@20250514", location="global"
    )
    assert (
        streamed.url
        == "https://aiplatform.googleapis.com" + CLAUDE.format(location="global") + ":streamRawPredict"
    )
    assert json.loads(streamed.body)["stream"] is True and streamed.stream


def test_claude_body_is_the_anthropic_plugins_but_model(kit: Any) -> None:
    body = {**CHAT, "tools": TOOLS, "tool_choice": "required"}
    call = kit.upstream(body, type="vertex-anthropic", model="claude-sonnet-4@20250514", max_tokens=1000)
    reference = anthropic.transform_request(
        provider=Provider(
            name="a", type="anthropic", base_url="https://x", options=AnthropicOptions(max_tokens=1000)
        ),
        model="claude-sonnet-4@20250514",
        request=kit.request(body),
        api_key="sk-ant",
    )
    assert reference is not None
    expected = json.loads(reference.body)
    del expected["model"]
    assert json.loads(call.body) == {"anthropic_version": "vertex-2023-10-16", **expected}


def test_anthropic_client_body_passes_through_without_model(kit: Any) -> None:
    client = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "u1"},
    }
    call = kit.upstream(
        client, type="vertex-anthropic", model="claude-sonnet-4@20250514", dialect="anthropic"
    )
    sent = json.loads(call.body)
    del client["model"]
    assert sent == {"anthropic_version": "vertex-2023-10-16", **client}


def test_anthropic_version_option(kit: Any) -> None:
    call = kit.upstream(
        CHAT, type="vertex-anthropic", model="claude-3-5-haiku@20241022", anthropic_version="2025-01-01"
    )
    assert json.loads(call.body)["anthropic_version"] == "2025-01-01"


@pytest.mark.parametrize(
    "model", ["../../other", "claude?x=1", "a/b", "", "x" * 300, ".hidden", "claude#frag", "tunedModels/mine"]
)
@pytest.mark.parametrize("provider_type", ["vertex", "vertex-anthropic"])
def test_models_that_are_not_one_name_are_refused(kit: Any, model: str, provider_type: str) -> None:
    with pytest.raises(UnsupportedRequest) as refused:
        kit.upstream(CHAT, type=provider_type, model=model)
    assert refused.value.param == "model"


def test_claude_token_counts_go_to_count_tokens_with_the_model_in_the_body(kit: Any) -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    call = kit.upstream(
        body, type="vertex-anthropic", model="claude-sonnet-4@20250514", endpoint="count_tokens"
    )
    assert call.url == (
        "https://aiplatform.googleapis.com/v1/projects/my-project/locations/global/publishers/anthropic/"
        "models/count-tokens:rawPredict"
    )
    sent = json.loads(call.body)
    assert sent["anthropic_version"] == "vertex-2023-10-16"
    assert sent["model"] == "claude-sonnet-4@20250514"
    assert "max_tokens" not in sent and not call.stream


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "project"),
        ({"project": "My_Project"}, "project"),
        ({"project": "p"}, "project"),
        ({"project": "my-project", "location": "us-central1/../x"}, "location"),
        ({"project": "my-project", "location": "US"}, "location"),
    ],
)
def test_options_are_checked(options: dict[str, Any], field: str) -> None:
    from truckllm_provider_vertex.options import AnthropicVertexOptions, VertexOptions

    for schema in (VertexOptions, AnthropicVertexOptions):
        with pytest.raises(msgspec.ValidationError, match=field):
            msgspec.convert(options, schema)


def test_a_provider_without_vertex_options_is_a_clear_error(kit: Any) -> None:
    for provider_type in ("vertex", "vertex-anthropic"):
        provider = Provider(name="vx", type=provider_type, base_url="", options=None)
        with pytest.raises(UnsupportedRequest, match="project"):
            from truckllm_provider_vertex import transform_request

            transform_request(provider=provider, model="m", request=kit.request(CHAT), api_key=TOKEN)
