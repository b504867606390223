"""Request pass-through, error classification and the stream translator."""

from __future__ import annotations

import json
import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_provider_openai import OpenAIStream, Options, read_error, transform_request, transform_response

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UpstreamFailure
from truckllm.types import ChatRequest, Provider, UpstreamResponse

PROVIDER = Provider(
    name="oa", type="openai", base_url="https://api.example/v1", options=Options(organization="org-1")
)


def chat(body: dict[str, object], endpoint: str = "chat") -> ChatRequest:
    raw = json.dumps(body).encode()
    typed = msgspec.json.decode(raw, type=ChatCompletionRequest)
    options = body.get("stream_options")
    stream = bool(body.get("stream"))
    return ChatRequest(
        endpoint=endpoint,
        body=raw,
        model=str(body["model"]),
        stream=stream,
        typed=typed,
        include_usage=bool(stream and isinstance(options, dict) and options.get("include_usage")),
    )


BASE = {"model": "alias", "messages": [{"role": "user", "content": "hi"}]}


def test_body_passes_through_byte_for_byte_when_the_model_is_the_same() -> None:
    request = chat({**BASE, "model": "gpt-4o"})
    upstream = transform_request(provider=PROVIDER, model="gpt-4o", request=request, api_key="sk-x")
    assert upstream is not None and upstream.body is request.body


def test_only_model_is_rewritten_and_order_and_unknown_fields_survive() -> None:
    request = chat({**BASE, "zeta": {"keep": [1, 2.50]}, "temperature": 0})
    upstream = transform_request(provider=PROVIDER, model="gpt-4o", request=request, api_key="sk-x")
    assert upstream is not None
    sent = json.loads(upstream.body)
    assert sent == {**BASE, "model": "gpt-4o", "zeta": {"keep": [1, 2.50]}, "temperature": 0}
    assert list(sent) == ["model", "messages", "zeta", "temperature"]
    assert upstream.url == "https://api.example/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer sk-x"
    assert upstream.headers["openai-organization"] == "org-1"


def test_stream_asks_for_usage_keeping_other_stream_options() -> None:
    request = chat({**BASE, "stream": True, "stream_options": {"include_obfuscation": False}})
    upstream = transform_request(provider=PROVIDER, model="m", request=request, api_key="k")
    assert upstream is not None and upstream.stream
    assert json.loads(upstream.body)["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }


def test_reasoning_models_get_max_completion_tokens() -> None:
    request = chat({**BASE, "max_tokens": 50})
    upstream = transform_request(provider=PROVIDER, model="o3-mini", request=request, api_key="k")
    assert upstream is not None
    sent = json.loads(upstream.body)
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    plain = transform_request(provider=PROVIDER, model="gpt-4o", request=request, api_key="k")
    assert plain is not None and json.loads(plain.body)["max_tokens"] == 50


def test_azure_style_auth_and_query() -> None:
    azure = Provider(
        name="az",
        type="openai",
        base_url="https://x.openai.azure.com/openai/deployments/d",
        options=Options(auth_header="api-key", query={"api-version": "2024-10-21"}),
    )
    upstream = transform_request(provider=azure, model="d", request=chat(BASE), api_key="az-key")
    assert upstream is not None
    assert upstream.url.endswith("/chat/completions?api-version=2024-10-21")
    assert upstream.headers["api-key"] == "az-key" and "authorization" not in upstream.headers


def test_other_provider_types_are_not_ours() -> None:
    other = Provider(name="x", type="anthropic", base_url="")
    assert transform_request(provider=other, model="m", request=chat(BASE), api_key="k") is None


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "client_status", "retry_after"),
    [
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached. Please try again in 1.574s.",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            {},
            "rate_limit",
            429,
            1.574,
        ),
        (
            429,
            {"error": {"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"}},
            {"retry-after-ms": "250", "retry-after": "1"},
            "rate_limit",
            429,
            0.25,
        ),
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            {},
            "quota",
            429,
            None,
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
            {},
            "context_length",
            400,
            None,
        ),
        (
            401,
            {
                "error": {
                    "message": "Incorrect API key provided: sk-abc",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            {},
            "auth",
            502,
            None,
        ),
        (500, {"error": {"message": "boom", "type": "server_error"}}, {}, "server", 500, None),
        (
            503,
            {"error": {"message": "overloaded", "type": "server_error"}},
            {"retry-after": "2"},
            "overloaded",
            503,
            2.0,
        ),
    ],
)
def test_errors_are_classified(
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    kind: str,
    client_status: int,
    retry_after: float | None,
) -> None:
    error = read_error(status, headers, json.dumps(body).encode())
    assert (error.kind, error.status) == (kind, client_status)
    assert error.retry_after == (pytest.approx(retry_after) if retry_after is not None else None)


def test_non_json_error_body_is_kept_as_text() -> None:
    error = read_error(502, {}, b"<html>Bad Gateway</html>")
    assert error.kind == "server" and "Bad Gateway" in error.message


def test_ratelimit_headers_are_read_on_success() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    result = transform_response(
        provider=PROVIDER,
        request=chat(BASE),
        response=UpstreamResponse(status=200, headers=headers, body=b"{}"),
        model="gpt-4o",
    )
    assert result is not None and result.limits is not None
    assert result.limits.remaining_requests == 59 and result.limits.reset_tokens == 360


STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":1}}}\n\n'
    b"data: [DONE]\n\n"
)


def run(stream: bytes, cuts: list[int], include_usage: bool) -> bytes:
    translator = OpenAIStream(include_usage, None)
    out = b""
    last = 0
    for cut in sorted(set(cuts)):
        out += translator.feed(stream[last:cut])
        last = cut
    out += translator.feed(stream[last:])
    return out + translator.close()


def test_usage_chunk_is_read_and_dropped_unless_asked() -> None:
    translator = OpenAIStream(False, None)
    out = translator.feed(STREAM) + translator.close()
    assert b'"choices":[]' not in out and out.endswith(b"data: [DONE]\n\n")
    assert translator.usage is not None
    assert (
        translator.usage.total_tokens,
        translator.usage.cached_tokens,
        translator.usage.reasoning_tokens,
    ) == (7, 3, 1)
    assert run(STREAM, [], True) == STREAM


@settings(max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "200")), deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8), st.booleans())
def test_any_split_gives_the_same_frames(cuts: list[int], include_usage: bool) -> None:
    assert run(STREAM, cuts, include_usage) == run(STREAM, [], include_usage)


def test_crlf_framed_stream_is_understood() -> None:
    assert run(STREAM.replace(b"\n", b"\r\n"), [], True) == STREAM


def test_mid_stream_error_and_missing_done_raise() -> None:
    translator = OpenAIStream(False, None)
    translator.feed(STREAM[:120])  # mid-frame: the rest of the frame follows
    with pytest.raises(UpstreamFailure) as info:
        translator.feed(
            STREAM[120 : STREAM.index(b"\n\n") + 2]
            + b'data: {"error":{"message":"The server had an error","type":"server_error"}}\n\n'
        )
    assert info.value.error.kind == "stream" and "server had an error" in info.value.error.message
    together = OpenAIStream(False, None)
    with pytest.raises(UpstreamFailure) as both:
        together.feed(
            STREAM[: STREAM.index(b"\n\n", 150) + 2]
            + b'data: {"error":{"message":"late","type":"server_error"}}\n\n'
        )
    assert both.value.pending.startswith(STREAM.split(b"\n\n")[0])  # frames before the error are kept
    cut = OpenAIStream(False, None)
    cut.feed(STREAM[:200])
    with pytest.raises(UpstreamFailure):
        cut.close()


@settings(max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300")), deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_translator(data: bytes) -> None:
    translator = OpenAIStream(True, None)
    try:
        translator.feed(data)
        translator.close()
    except UpstreamFailure:
        pass


def test_invalid_utf8_in_an_error_event_is_still_an_upstream_error() -> None:
    translator = OpenAIStream(False, None)
    with pytest.raises(UpstreamFailure):
        translator.feed(b'data: {"error":{"message":"\x80bad"}}\n\n')
