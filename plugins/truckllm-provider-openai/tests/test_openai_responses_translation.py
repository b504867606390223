"""``api: responses`` and ``responses_models``: which chat requests go through ``/responses``, what
is refused by name, and how answers, usage and failures come back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_provider_openai import (
    Options,
    ResponsesToChat,
    parse_usage,
    transform_request,
    transform_response,
    transform_stream,
)
from truckllm_provider_openai.options import DEFAULT_RESPONSES_MODELS

from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, UpstreamResponse, Usage

HI = [{"role": "user", "content": "hi"}]
RESPONSE = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1741290958,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "model": "o3-pro",
    "output": [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hello", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 20,
    },
}


def url(kit: Any, model: str, body: dict[str, Any] | None = None, **options: Any) -> str:
    request = kit.chat_request(body or {"model": "alias", "messages": HI})
    upstream = transform_request(provider=kit.provider(**options), model=model, request=request, api_key="k")
    assert upstream is not None
    return str(upstream.url).removeprefix(kit.base_url)


@pytest.mark.parametrize(
    "model",
    [
        "o1-pro", "o1-pro-2025-03-19", "o3-pro", "o3-deep-research", "o4-mini-deep-research-2025-06-26",
        "computer-use-preview", "codex-mini-latest", "gpt-5-codex", "gpt-5.1-codex-max", "gpt-5-pro",
        "gpt-5.2-pro-2025-12-11", "gpt-5.5-pro",
    ],
)  # fmt: skip
def test_responses_only_models_go_through_responses_by_default(kit: Any, model: str) -> None:
    assert url(kit, model) == "/responses"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-5", "gpt-5.1", "o3", "o4-mini", "gpt-4.1-mini", "llama3"])
def test_other_models_stay_on_chat_completions(kit: Any, model: str) -> None:
    assert url(kit, model) == "/chat/completions"


def test_api_responses_sends_every_chat_request_through_responses(kit: Any) -> None:
    assert url(kit, "gpt-4o", api="responses") == "/responses"
    assert url(kit, "my-azure-deployment", api="responses") == "/responses"


def test_responses_models_can_be_changed_or_turned_off(kit: Any) -> None:
    assert url(kit, "o3-pro", responses_models=None) == "/chat/completions"
    assert url(kit, "my-model", responses_models="^my-") == "/responses"
    assert url(kit, "o3-pro", responses_models="^my-") == "/chat/completions"


def test_options_are_checked_at_load() -> None:
    for bad in ({"api": "grpc"}, {"responses_models": "("}, {"responses_models": 5}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, Options)
    assert msgspec.convert({}, Options).responses_models == DEFAULT_RESPONSES_MODELS


def test_completions_and_embeddings_keep_their_endpoints(kit: Any) -> None:
    provider = kit.provider(api="responses")
    for endpoint, path in (("completions", "/completions"), ("embeddings", "/embeddings")):
        body = b'{"model":"m","prompt":"x"}' if endpoint == "completions" else b'{"model":"m","input":"x"}'
        request = ChatRequest(endpoint=endpoint, body=body, model="m")
        upstream = transform_request(provider=provider, model="m", request=request, api_key="k")
        assert upstream is not None and upstream.url == kit.base_url + path and upstream.body is body


def test_a_client_of_another_dialect_is_translated_from_its_typed_form(kit: Any) -> None:
    request = kit.chat_request(
        {"model": "alias", "messages": HI, "max_tokens": 64},
        dialect="anthropic",
        raw_extra={"service_tier": "priority", "system": "raw anthropic member"},
    )
    upstream = transform_request(provider=kit.provider(), model="o3-pro", request=request, api_key="k")
    assert upstream is not None and upstream.url.endswith("/responses")
    assert json.loads(upstream.body) == {
        "model": "o3-pro",
        "input": [{"type": "message", "role": "user", "content": "hi"}],
        "max_output_tokens": 64,
        "store": False,
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"stop": "###"}, "stop"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tools": [{"type": "custom", "custom": {"name": "c"}}]}, "tools[0]"),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}]},
            "messages[0].function_call",
        ),
    ],
)  # fmt: skip
def test_what_the_responses_api_cannot_do_is_refused_naming_the_field(
    kit: Any, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "alias", "messages": HI, **extra}
    raw_only = {
        k: v
        for k, v in extra.items()
        if k in ("audio", "modalities", "prediction", "web_search_options", "functions")
    }
    typed = {k: v for k, v in body.items() if k not in raw_only}
    request = kit.chat_request(typed, raw_extra=raw_only)
    with pytest.raises(UnsupportedRequest) as refused:
        transform_request(provider=kit.provider(), model="o3-pro", request=request, api_key="k")
    assert refused.value.param == param and "Responses API" in refused.value.message


def test_harmless_chat_fields_are_dropped_not_refused(kit: Any) -> None:
    body = {
        "model": "alias",
        "messages": HI,
        "seed": 3,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "n": 1,
        "logprobs": False,
        "stop": None,
    }
    request = kit.chat_request(body, raw_extra={"modalities": ["text"], "audio": None})
    upstream = transform_request(provider=kit.provider(), model="o3-pro", request=request, api_key="k")
    assert upstream is not None
    assert set(json.loads(upstream.body)) == {"model", "input", "store"}


def respond(kit: Any, body: bytes, status: int = 200, model: str = "o3-pro") -> Any:
    result = transform_response(
        provider=kit.provider(),
        request=kit.chat_request({"model": "alias", "messages": HI}),
        response=UpstreamResponse(status=status, body=body),
        model=model,
    )
    assert result is not None
    return result


def test_a_response_comes_back_as_a_chat_completion_and_its_usage_is_counted(kit: Any) -> None:
    body = json.dumps(RESPONSE, indent=2).encode()
    result = respond(kit, body)
    assert result.error is None and result.dialect == "openai"
    answer = json.loads(result.body)
    assert answer["id"] == "chatcmpl-abc" and answer["object"] == "chat.completion"
    assert answer["created"] == 1741290958 and answer["model"] == "o3-pro"
    assert answer["choices"][0]["message"]["content"] == "hello"
    assert answer["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 9,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    # the record counts the upstream's own answer: the Response's usage in the kernel's sense
    usage = parse_usage(
        provider=kit.provider(), request=kit.chat_request({"model": "a", "messages": HI}), body=body
    )
    assert usage == Usage(
        prompt_tokens=11, completion_tokens=9, total_tokens=20, cached_tokens=4, reasoning_tokens=5
    )


def test_a_chat_answer_is_still_read_as_one(kit: Any) -> None:
    chat = b'{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    usage = parse_usage(
        provider=kit.provider(), request=kit.chat_request({"model": "a", "messages": HI}), body=chat
    )
    assert usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html></html>",
        b'{"id":"c","object":"chat.completion","choices":[{"message":{"content":"x"}}]}',
        b'{"object":"response","output":"nope"}',
        b'{"object":"response","output":[{"type":"message","content":[7]}]}',
    ],
)
def test_an_answer_that_is_not_a_response_is_a_bad_response(kit: Any, body: bytes) -> None:
    error = respond(kit, body).error
    assert error is not None and error.kind == "bad_response" and error.status == 502


def test_a_failed_response_and_an_error_are_classified(kit: Any) -> None:
    failed = {**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "boom"}}
    error = respond(kit, json.dumps(failed).encode()).error
    assert error is not None and error.kind == "server" and error.retryable
    limited = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'
    error = respond(kit, limited, status=429).error
    assert error is not None and error.kind == "rate_limit"


def test_a_chat_stream_of_a_responses_model_gets_the_translator(kit: Any) -> None:
    def stream(model: str, **options: Any) -> Any:
        return transform_stream(
            provider=kit.provider(**options),
            request=kit.chat_request({"model": "alias", "messages": HI, "stream": True}),
            response=UpstreamResponse(status=200, headers={"content-type": "text/event-stream"}),
            model=model,
        )

    assert isinstance(stream("o3-pro"), ResponsesToChat) and stream("o3-pro").dialect == "openai"
    assert isinstance(stream("gpt-4o", api="responses"), ResponsesToChat)
    assert not isinstance(stream("gpt-4o"), ResponsesToChat)


def test_a_failure_mid_stream_keeps_the_chunks_already_sent(kit: Any) -> None:
    translator = ResponsesToChat(False, "fallback")
    created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    first = translator.feed(
        b"event: response.created\ndata: "
        + json.dumps({"type": "response.created", "response": created}).encode()
        + b"\n\n"
    )
    assert kit.data_frames(first)[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "par"}
    error = {"type": "error", "code": "server_error", "message": "The server had an error"}
    sent, failure = kit.run_stream(
        translator,
        [b"data: " + json.dumps(delta).encode() + b"\n\n" + b"data: " + json.dumps(error).encode() + b"\n\n"],
    )
    assert (
        failure is not None
        and failure.error.kind == "stream"
        and failure.error.message == "The server had an error"
    )
    assert [c["choices"][0]["delta"] for c in kit.data_frames(sent)] == [{"content": "par"}]


def test_a_stream_that_names_no_response_still_has_one_id_and_the_fallback_model(kit: Any) -> None:
    events = [
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "a"},
        {"type": "response.completed", "response": {"object": "response", "status": "completed"}},
    ]
    sent, failure = kit.run_stream(
        ResponsesToChat(False, "fallback"),
        [b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)],
    )
    assert failure is None
    chunks = [c for c in kit.data_frames(sent) if c != "[DONE]"]
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {"fallback"}
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
        {},
    ]
    assert kit.data_frames(sent)[-1] == "[DONE]"


def test_a_request_without_an_openai_form_is_refused_with_the_dialects_reason(kit: Any) -> None:
    request = ChatRequest(
        endpoint="chat",
        dialect="gemini",
        body=b"{}",
        model="m",
        refusal="code execution cannot be translated",
        refusal_param="tools[0]",
    )
    for model in ("gpt-4o", "o3-pro"):
        with pytest.raises(UnsupportedRequest) as refused:
            transform_request(provider=kit.provider(), model=model, request=request, api_key="k")
        assert (refused.value.message, refused.value.param) == (
            "code execution cannot be translated",
            "tools[0]",
        )
    # a Responses request is passed through as it is: no OpenAI form is needed
    passed = ChatRequest(
        endpoint="chat", dialect="responses", body=b'{"model":"m","input":"x","tools":[{"type":"web_search"}]}',
        model="m", refusal="web_search cannot be translated", refusal_param="tools[0]",
    )  # fmt: skip
    upstream = transform_request(provider=kit.provider(), model="m", request=passed, api_key="k")
    assert upstream is not None and upstream.body is passed.body


def test_a_token_limit_below_the_responses_minimum_is_raised_to_it(kit: Any) -> None:
    for limit, sent in ((0, 16), (5, 16), (16, 16), (17, 17)):
        request = kit.chat_request({"model": "alias", "messages": HI, "max_tokens": limit})
        upstream = transform_request(provider=kit.provider(), model="o3-pro", request=request, api_key="k")
        assert upstream is not None and json.loads(upstream.body)["max_output_tokens"] == sent


@pytest.mark.parametrize("dialect", ["anthropic", "gemini", "openai"])
def test_a_count_of_another_dialect_is_asked_of_input_tokens(kit: Any, dialect: str) -> None:
    body = {
        "model": "alias",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "count me"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "auto",
        "max_tokens": 100,
        "temperature": 0.5,
        "reasoning_effort": "low",
        "response_format": {"type": "json_object"},
        "stream": True,
    }
    request = msgspec.structs.replace(kit.chat_request(body, dialect=dialect), endpoint="count_tokens")
    upstream = transform_request(provider=kit.provider(), model="gpt-4o", request=request, api_key="k")
    assert upstream is not None
    assert upstream.url == kit.base_url + "/responses/input_tokens"
    assert not upstream.stream and upstream.headers["accept"] == "application/json"
    assert json.loads(upstream.body) == {  # the prompt's members only, in the count's order
        "model": "gpt-4o",
        "instructions": "sys",
        "input": [{"type": "message", "role": "user", "content": "count me"}],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            }
        ],
        "tool_choice": "auto",
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_object"}},
    }
    counted = b'{"object":"response.input_tokens","input_tokens":12}'
    result = transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, body=counted),
        model="gpt-4o",
    )
    assert result is not None and result.error is None
    assert result.body is counted and result.dialect == "openai"  # OpenAI's count, read by every dialect
    assert parse_usage(provider=kit.provider(), request=request, body=counted) == Usage()  # counting is free
    wrong = transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(status=200, body=b'{"n":1}'),
        model="m",
    )
    assert wrong is not None and wrong.error is not None and wrong.error.kind == "bad_response"


def test_a_count_is_refused_like_the_call_it_counts(kit: Any) -> None:
    request = msgspec.structs.replace(
        kit.chat_request({"model": "alias", "messages": HI, "n": 2}, dialect="gemini"),
        endpoint="count_tokens",
    )
    with pytest.raises(UnsupportedRequest) as refused:
        transform_request(provider=kit.provider(), model="gpt-4o", request=request, api_key="k")
    assert refused.value.param == "n"
    untyped = ChatRequest(endpoint="count_tokens", dialect="anthropic", body=b"{}", model="m")
    with pytest.raises(UnsupportedRequest):
        transform_request(provider=kit.provider(), model="gpt-4o", request=untyped, api_key="k")
