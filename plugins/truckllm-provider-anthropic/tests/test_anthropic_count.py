"""Token counting for clients of other dialects: the ``count_tokens`` body sent, the answer read.

A count asked in the Responses or Gemini dialect arrives in OpenAI's chat form (``typed``) and is
translated as a message would be, minus what ``POST /v1/messages/count_tokens`` refuses.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import truckllm_provider_anthropic as plugin
from truckllm_provider_anthropic.count import COUNT_FIELDS

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, UpstreamResponse

MODEL = "claude-sonnet-4-5-20250929"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _count_request(body: dict[str, Any], dialect: str = "responses", stream: bool = False) -> ChatRequest:
    """A count asked in ``dialect``: its typed form is OpenAI's chat request, as dialects build it."""
    raw = json.dumps(body).encode()
    return ChatRequest(
        endpoint="count_tokens",
        dialect=dialect,
        body=b'{"model": "alias", "input": "whatever the client sent"}',
        model="alias",
        stream=stream,
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )


def _upstream(kit: Any, request: ChatRequest, **options: Any) -> Any:
    upstream = plugin.transform_request(
        provider=kit.provider(**options), model=MODEL, request=request, api_key="sk-ant-test"
    )
    assert upstream is not None
    return upstream


def test_a_count_of_another_dialect_is_the_translated_message_minus_messages_only_members(kit: Any) -> None:
    request = _count_request(
        {
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": 100,
            "temperature": 0.5,
            "stop": ["END"],
            "user": "u-1",
            "stream": True,
        },
        stream=True,
    )
    upstream = _upstream(kit, request)
    assert upstream.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert upstream.stream is False and upstream.headers["accept"] == "application/json"
    assert upstream.headers["x-api-key"] == "sk-ant-test"
    assert json.loads(upstream.body) == {
        "model": MODEL,
        "system": "Be terse.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "any"},
    }


def test_thinking_and_the_json_tool_are_counted_as_a_message_would_send_them(kit: Any) -> None:
    request = _count_request(
        {
            "model": "alias",
            "messages": [{"role": "user", "content": "A JSON city, please."}],
            "reasoning_effort": "low",
            "response_format": {"type": "json_object"},
        },
        dialect="gemini",
    )
    body = json.loads(_upstream(kit, request).body)
    assert set(body) <= set(COUNT_FIELDS)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert [tool["name"] for tool in body["tools"]] == ["json_tool_call"]
    assert body["tool_choice"] == {"type": "auto"}  # forcing is relaxed under thinking, as for a message
    native = json.loads(_upstream(kit, request, json_mode="output_config").body)
    assert native["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert "tools" not in native


def test_anthropic_clients_still_pass_through(kit: Any) -> None:
    raw = b'{"model": "alias", "messages": [{"role": "user", "content": "hi"}], "system": "s"}'
    request = ChatRequest(endpoint="count_tokens", dialect="anthropic", body=raw, model="alias")
    assert json.loads(_upstream(kit, request).body) == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "s",
    }
    answer = b'{"input_tokens": 7}'
    result = plugin.transform_response(
        provider=kit.provider(), request=request, response=UpstreamResponse(status=200, body=answer)
    )
    assert result is not None and (result.body, result.dialect) == (answer, "anthropic")


def test_what_anthropic_cannot_count_is_refused_naming_the_field(kit: Any) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}], "n": 2})
    with pytest.raises(UnsupportedRequest) as caught:
        _upstream(kit, request)
    assert caught.value.param == "n"
    untyped = ChatRequest(endpoint="count_tokens", dialect="responses", body=b"{}", model="alias")
    with pytest.raises(UnsupportedRequest):
        _upstream(kit, untyped)


def test_the_count_comes_back_as_openais_count_answer(kit: Any) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    result = plugin.transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, headers={"request-id": "req_1"}, body=b'{"input_tokens": 42}'),
    )
    assert result is not None and result.error is None and result.dialect == "openai"
    assert json.loads(result.body) == {"object": "response.input_tokens", "input_tokens": 42}
    usage = plugin.parse_usage(provider=kit.provider(), request=request, body=result.body)
    assert usage is not None and usage.total_tokens == 0  # counting is free


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"[]",
        b"{}",
        b'{"input_tokens": "42"}',
        b'{"input_tokens": 4.2}',
        b'{"input_tokens": true}',
        b'{"input_tokens": -1}',
        b'{"input_tokens": 1e30}',
        b'{"input_tokens": 99999999999}',
        b'{"type": "message", "content": []}',
    ],
)
def test_an_answer_that_is_not_a_count_is_a_bad_response(kit: Any, body: bytes) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    result = plugin.transform_response(
        provider=kit.provider(), request=request, response=UpstreamResponse(status=200, body=body)
    )
    assert result is not None and result.body == b"" and result.error is not None
    assert (result.error.status, result.error.kind) == (502, "bad_response")


def test_an_error_is_classified_as_for_a_message(kit: Any) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    body = b'{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}'
    result = plugin.transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=429, headers={"retry-after": "3"}, body=body),
    )
    assert result is not None and result.error is not None
    assert (result.error.status, result.error.kind, result.error.retry_after) == (429, "rate_limit", 3.0)


@pytest.mark.parametrize(
    ("module", "reader"),
    [
        ("truckllm_dialect_anthropic.response", "count_tokens_body"),
        ("truckllm_dialect_gemini.response", "count_tokens_body"),
        ("truckllm_dialect_responses.response", "count_from_chat"),
    ],
)
def test_every_inbound_dialect_reads_the_answer(kit: Any, module: str, reader: str) -> None:
    read = getattr(pytest.importorskip(module), reader)
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    result = plugin.transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, body=b'{"input_tokens": 9}'),
    )
    assert result is not None
    assert 9 in json.loads(read(result.body)).values()
