"""``transform_request``: URL and headers, pass-through, refusals and the edges of the translation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import truckllm_provider_anthropic as plugin

from truckllm.errors import UnsupportedRequest
from truckllm.types import Provider, UpstreamResponse

USER = {"role": "user", "content": "hi"}
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 test").decode()


def chat(**fields: Any) -> dict[str, Any]:
    """A chat body with one user message plus ``fields``."""
    return {"model": "claude", "messages": [USER], **fields}


def test_hook_transform_request_url_and_headers(kit: Any) -> None:
    provider = Provider(
        name="anth",
        type="anthropic",
        base_url="https://proxy.example/anthropic",
        headers={"x-extra": "1"},
        options=plugin.Options(
            beta=("prompt-caching-2024-07-31", "output-128k-2025-02-19"), anthropic_version="2023-01-01"
        ),
    )
    upstream = plugin.transform_request(
        provider=provider, model="claude-x", request=kit.request(chat(stream=True)), api_key="sk-1"
    )
    assert upstream is not None
    assert upstream.url == "https://proxy.example/anthropic/v1/messages"
    assert upstream.stream is True
    assert upstream.headers == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "anthropic-version": "2023-01-01",
        "x-api-key": "sk-1",
        "anthropic-beta": "prompt-caching-2024-07-31,output-128k-2025-02-19",
        "x-extra": "1",
    }


def test_other_provider_types_are_not_ours(kit: Any) -> None:
    other = Provider(name="o", type="openai", base_url="https://api.openai.com/v1")
    request = kit.request(chat())
    assert plugin.transform_request(provider=other, model="m", request=request, api_key="k") is None
    assert plugin.parse_usage(provider=other, request=request, body=b"{}") is None
    response = UpstreamResponse(status=200)
    assert plugin.transform_response(provider=other, request=request, response=response) is None
    assert plugin.transform_stream(provider=other, request=request, response=response) is None


def test_register_providers_spec() -> None:
    specs: list[Any] = []
    plugin.register_providers(register=specs.append)
    (spec,) = specs
    assert spec.type == "anthropic" and spec.dialect == "anthropic"
    assert spec.default_base_url == "https://api.anthropic.com"
    batches = {"files.create", "files.content", "batches.create", "batches.retrieve", "batches.cancel"}
    assert spec.endpoints == frozenset({"chat", "completions", "count_tokens", "batches.usage", *batches})
    assert spec.options is plugin.Options


def test_anthropic_dialect_passes_the_body_through_with_only_the_model_rewritten(kit: Any) -> None:
    body = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "weird": [1, 2],
    }
    request = kit.request(body, dialect="anthropic", headers={"anthropic-beta": "a, b"})
    upstream = plugin.transform_request(
        provider=kit.provider(beta=("b", "c")), model="claude-real", request=request, api_key="k"
    )
    assert upstream is not None
    assert json.loads(upstream.body) == {**body, "model": "claude-real"}
    assert upstream.headers["anthropic-beta"] == "b,c,a"
    same = plugin.transform_request(provider=kit.provider(), model="claude", request=request, api_key="k")
    assert same is not None and same.body is request.body  # untouched bytes when the model is unchanged


def test_no_key_sends_no_x_api_key(kit: Any) -> None:
    upstream = plugin.transform_request(
        provider=Provider(
            name="a", type="anthropic", base_url="http://x", headers={"authorization": "Bearer t"}
        ),
        model="m",
        request=kit.request(chat()),
        api_key="",
    )
    assert upstream is not None
    assert "x-api-key" not in upstream.headers and upstream.headers["authorization"] == "Bearer t"
    assert upstream.headers["anthropic-version"] == "2023-06-01"  # default options


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 3}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "allowed_tools"},
            },
            "tool_choice",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
            "tools[0].function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]},
            "tools[0].function.parameters",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "json_tool_call"}}],
                "response_format": {"type": "json_object"},
            },
            "tools",
        ),
    ],
)
def test_unsupported_parameters_are_refused_naming_the_param(
    kit: Any, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate(chat(**fields))
    assert info.value.param == param


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (
            [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            "messages[0].content[0]",
        ),
        ([{"type": "file", "file": {"file_id": "file-1"}}], "messages[0].content[0]"),
        ([{"type": "file", "file": {"file_data": "data:text/csv;base64,YQ=="}}], "messages[0].content[0]"),
    ],
)
def test_unsupported_content_parts(kit: Any, content: list[Any], param: str) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate({"model": "c", "messages": [{"role": "user", "content": content}]})
    assert info.value.param == param


def test_pdf_file_becomes_a_document_block(kit: Any) -> None:
    body = kit.translate(
        {
            "model": "c",
            "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_data": PDF}}]}],
        }
    )
    block = body["messages"][0]["content"][0]
    assert block["type"] == "document" and block["source"]["media_type"] == "application/pdf"


def test_bad_tool_call_arguments_are_refused(kit: Any) -> None:
    for arguments in ("{not json", "[1, 2]"):
        with pytest.raises(UnsupportedRequest) as info:
            kit.translate(
                {
                    "model": "c",
                    "messages": [
                        USER,
                        {
                            "role": "assistant",
                            "tool_calls": [
                                {
                                    "id": "c",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": arguments},
                                }
                            ],
                        },
                    ],
                }
            )
        assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_deprecated_function_calling_is_refused(kit: Any) -> None:
    with pytest.raises(UnsupportedRequest):
        kit.translate({"model": "c", "messages": [USER, {"role": "function", "name": "f", "content": "x"}]})
    with pytest.raises(UnsupportedRequest):
        kit.translate(
            {
                "model": "c",
                "messages": [USER, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}],
            }
        )


def test_thinking_blocks_must_be_anthropic_blocks(kit: Any) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate(
            {
                "model": "c",
                "messages": [
                    USER,
                    {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "reasoning"}]},
                ],
            }
        )
    assert info.value.param == "messages[1].thinking_blocks[0]"


def test_harmless_parameters_are_dropped(kit: Any) -> None:
    body = kit.translate(
        chat(
            seed=1,
            presence_penalty=1,
            frequency_penalty=-1,
            n=1,
            logprobs=False,
            top_logprobs=0,
            logit_bias={},
            metadata={"k": "v"},
        )
    )
    assert set(body) == {"model", "max_tokens", "messages"}


def test_reasoning_effort_none_means_no_thinking(kit: Any) -> None:
    assert "thinking" not in kit.translate(chat(reasoning_effort="none"))
    assert kit.translate(chat(reasoning_effort="minimal"))["thinking"]["budget_tokens"] == 1024


def test_tool_without_type_in_schema_gets_object(kit: Any) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"properties": {"a": {"type": "string"}}}},
        }
    ]
    body = kit.translate(chat(tools=tools))
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {"a": {"type": "string"}}}
    tools = [{"type": "function", "function": {"name": "g", "parameters": {}}}]
    assert kit.translate(chat(tools=tools))["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {},
    }


def test_tool_choice_auto_and_none_without_tools_are_omitted(kit: Any) -> None:
    assert "tool_choice" not in kit.translate(chat(tool_choice="auto"))
    assert "tool_choice" not in kit.translate(chat(tool_choice="none"))


def test_parallel_tool_calls_false_adds_auto_choice(kit: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = kit.translate(chat(tools=tools, parallel_tool_calls=False))
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_json_mode_with_thinking_offers_the_json_tool_without_forcing(kit: Any) -> None:
    body = kit.translate(chat(reasoning_effort="low", response_format={"type": "json_object"}))
    assert body["tool_choice"] == {"type": "auto"}
    assert body["tools"][-1]["name"] == "json_tool_call"


def test_json_object_with_output_config(kit: Any) -> None:
    body = kit.translate(chat(response_format={"type": "json_object"}), json_mode="output_config")
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert "tools" not in body


def test_response_format_text_changes_nothing(kit: Any) -> None:
    assert set(kit.translate(chat(response_format={"type": "text"}))) == {"model", "max_tokens", "messages"}


def test_assistant_refusal_history_is_kept_as_text(kit: Any) -> None:
    body = kit.translate(
        {
            "model": "c",
            "messages": [USER, {"role": "assistant", "content": None, "refusal": "I can't."}, USER],
        }
    )
    assert body["messages"][1]["content"] == [{"type": "text", "text": "I can't."}]
    body = kit.translate(
        {
            "model": "c",
            "messages": [
                USER,
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
                USER,
            ],
        }
    )
    assert body["messages"][1]["content"] == [{"type": "text", "text": "No."}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"logprobs": 2}, "logprobs"),
        ({"n": 2}, "n"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_legacy_completion_refusals(kit: Any, fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        kit.translate({"model": "c", "prompt": "x", **fields}, endpoint="completions")
    assert info.value.param == param


def test_embeddings_are_not_served(kit: Any) -> None:
    from truckllm.types import ChatRequest

    request = ChatRequest(endpoint="embeddings", body=b"{}", model="m", typed=None)
    with pytest.raises(UnsupportedRequest):
        plugin.transform_request(provider=kit.provider(), model="m", request=request, api_key="k")


def test_count_tokens_passes_through_for_anthropic_clients_and_is_translated_for_others(kit: Any) -> None:
    from truckllm.types import ChatRequest, Provider

    provider = Provider(name="an", type="anthropic", base_url="https://api.anthropic.com")
    body = b'{"model": "claude", "messages": [{"role": "user", "content": "hi"}]}'
    request = ChatRequest(endpoint="count_tokens", dialect="anthropic", body=body, model="claude")
    upstream = plugin.transform_request(
        provider=provider, model="claude-sonnet-4-6", request=request, api_key="k"
    )
    assert upstream is not None and upstream.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert b'"claude-sonnet-4-6"' in upstream.body and not upstream.stream
    usage = plugin.parse_usage(provider=provider, request=request, body=b'{"input_tokens": 12}')
    assert usage is not None and usage.total_tokens == 0
    translated = kit.upstream(
        {"model": "claude", "messages": [{"role": "user", "content": "hi"}]},
        endpoint="count_tokens",
        model="claude-sonnet-4-6",
    )
    assert translated.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert json.loads(translated.body) == {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
