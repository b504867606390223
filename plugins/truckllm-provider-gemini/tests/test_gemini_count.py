"""Token counting for clients of other dialects: the ``countTokens`` body sent, the answer read.

A count asked in the Responses or Anthropic dialect arrives in OpenAI's chat form (``typed``) and
is sent as the ``generateContentRequest`` a chat call would send, with its ``model``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import truckllm_provider_gemini as gemini

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _count_request(body: dict[str, Any], dialect: str = "responses", stream: bool = False) -> ChatRequest:
    """A count asked in ``dialect``: its typed form is OpenAI's chat request, as dialects build it."""
    return ChatRequest(
        endpoint="count_tokens",
        dialect=dialect,
        body=b'{"model": "alias", "input": "whatever the client sent"}',
        model="alias",
        stream=stream,
        typed=msgspec.json.decode(json.dumps(body).encode(), type=ChatCompletionRequest),
    )


def _upstream(gx: Any, request: ChatRequest, model: str = "gemini-2.5-flash", **options: Any) -> Any:
    upstream = gemini.transform_request(
        provider=gx.provider(**options), model=model, request=request, api_key="test-key"
    )
    assert upstream is not None
    return upstream


def test_a_count_of_another_dialect_is_the_whole_generate_request_with_its_model(gx: Any) -> None:
    request = _count_request(
        {
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Weather in Paris?"},
            ],
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": 100,
            "temperature": 0.5,
            "stream": True,
        },
        stream=True,
    )
    upstream = _upstream(
        gx, request, safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]
    )
    assert upstream.url == "https://gemini.test/v1beta/models/gemini-2.5-flash:countTokens"
    assert upstream.stream is False and upstream.headers["accept"] == "application/json"
    assert upstream.headers["x-goog-api-key"] == "test-key"
    assert json.loads(upstream.body) == {
        "generateContentRequest": {
            "model": "models/gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "description": "Weather in a city",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {"city": {"type": "STRING"}},
                                "required": ["city"],
                            },
                        }
                    ]
                }
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
        }
    }


def test_the_count_body_is_what_a_chat_call_would_send(gx: Any) -> None:
    chat = {
        "model": "alias",
        "messages": [{"role": "user", "content": "A JSON city."}],
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
    }
    counted = json.loads(
        _upstream(gx, _count_request(chat, dialect="anthropic"), model="tunedModels/mine").body
    )
    assert counted == {"generateContentRequest": {"model": "tunedModels/mine", **gx.translate(chat)}}


def test_gemini_clients_still_pass_through_with_the_deployments_model(gx: Any) -> None:
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    plain = json.dumps({"contents": contents}).encode()
    request = ChatRequest(endpoint="count_tokens", dialect="gemini", body=plain, model="alias")
    assert _upstream(gx, request).body == plain
    whole = json.dumps({"generateContentRequest": {"model": "models/alias", "contents": contents}}).encode()
    request = ChatRequest(endpoint="count_tokens", dialect="gemini", body=whole, model="alias")
    assert json.loads(_upstream(gx, request).body) == {
        "generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": contents}
    }
    answer = b'{"totalTokens": 7}'
    result = gx.respond(request, answer)
    assert (result.body, result.dialect) == (answer, "gemini")


def test_what_gemini_cannot_count_is_refused_naming_the_field(gx: Any) -> None:
    request = _count_request(
        {
            "model": "alias",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        }
    )
    with pytest.raises(UnsupportedRequest) as caught:
        _upstream(gx, request)
    assert caught.value.param == "tool_choice"
    with pytest.raises(UnsupportedRequest) as caught:
        _upstream(
            gx, _count_request({"model": "a", "messages": [{"role": "user", "content": "x"}]}), model="a/b"
        )
    assert caught.value.param == "model"
    untyped = ChatRequest(endpoint="count_tokens", dialect="responses", body=b"{}", model="alias")
    with pytest.raises(UnsupportedRequest):
        _upstream(gx, untyped)


def test_the_count_comes_back_as_openais_count_answer(gx: Any) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    body = {"totalTokens": 42, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 42}]}
    result = gx.respond(request, body)
    assert result.error is None and result.dialect == "openai"
    assert json.loads(result.body) == {"object": "response.input_tokens", "input_tokens": 42}
    assert gx.respond_json(request, {}) == {"object": "response.input_tokens", "input_tokens": 0}
    usage = gemini.parse_usage(provider=gx.provider(), request=request, body=result.body)
    assert usage is not None and usage.total_tokens == 0  # counting is free


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"[]",
        b"null",
        b'{"totalTokens": "42"}',
        b'{"totalTokens": 4.2}',
        b'{"totalTokens": true}',
        b'{"totalTokens": -1}',
        b'{"totalTokens": 1e30}',
        b'{"totalTokens": 99999999999}',
        b'{"totalTokens": [1]}',
    ],
)
def test_an_answer_that_is_not_a_count_is_a_bad_response(gx: Any, body: bytes) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    result = gx.respond(request, body)
    assert result.body == b"" and result.error is not None
    assert (result.error.status, result.error.kind) == (502, "bad_response")


def test_an_error_in_a_2xx_or_an_error_status_is_classified(gx: Any) -> None:
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    error = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    for status in (200, 429):
        result = gx.respond(request, error, status)
        assert result.error is not None and result.error.status == 429, status


@pytest.mark.parametrize(
    ("module", "reader"),
    [
        ("truckllm_dialect_anthropic.response", "count_tokens_body"),
        ("truckllm_dialect_gemini.response", "count_tokens_body"),
        ("truckllm_dialect_responses.response", "count_from_chat"),
    ],
)
def test_every_inbound_dialect_reads_the_answer(gx: Any, module: str, reader: str) -> None:
    read = getattr(pytest.importorskip(module), reader)
    request = _count_request({"model": "alias", "messages": [{"role": "user", "content": "x"}]})
    result = gx.respond(request, {"totalTokens": 9})
    assert 9 in json.loads(read(result.body)).values()
