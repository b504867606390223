"""The hooks called directly: request body, error classification, the stream translator."""

from __future__ import annotations

import json

import msgspec
import pytest
from truckllm.errors import UpstreamFailure
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.types import ChatRequest, Provider, UpstreamResponse

from truckllm_provider_example import (
    ExampleStream,
    Options,
    read_error,
    transform_request,
    transform_response,
    transform_stream,
)

LOCAL = Provider(name="local", type="example", base_url="http://127.0.0.1:8000/v1")


def chat(**body: object) -> ChatRequest:
    fields = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], **body}
    raw = json.dumps(fields).encode()
    options = fields.get("stream_options")
    return ChatRequest(
        endpoint="chat",
        body=raw,
        model="alias",
        stream=bool(fields.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )


def test_body_gets_the_deployment_model_and_keeps_the_rest() -> None:
    upstream = transform_request(provider=LOCAL, model="llama3", request=chat(temperature=0), api_key="")
    assert upstream is not None
    assert upstream.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert json.loads(upstream.body) == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
    }
    assert "authorization" not in upstream.headers  # no key configured: none sent
    with_key = transform_request(provider=LOCAL, model="llama3", request=chat(), api_key="sk-local")
    assert with_key is not None and with_key.headers["authorization"] == "Bearer sk-local"


def test_streams_ask_for_usage() -> None:
    upstream = transform_request(provider=LOCAL, model="m", request=chat(stream=True), api_key="")
    assert upstream is not None and upstream.stream
    assert json.loads(upstream.body)["stream_options"] == {"include_usage": True}


def test_default_max_tokens_only_when_the_client_gives_none() -> None:
    provider = Provider(
        name="l", type="example", base_url="http://x/v1", options=Options(default_max_tokens=64)
    )
    sent = transform_request(provider=provider, model="m", request=chat(), api_key="")
    assert sent is not None and json.loads(sent.body)["max_tokens"] == 64
    kept = transform_request(provider=provider, model="m", request=chat(max_tokens=5), api_key="")
    assert kept is not None and json.loads(kept.body)["max_tokens"] == 5


def test_other_provider_types_are_not_ours() -> None:
    other = Provider(name="o", type="openai", base_url="http://x/v1")
    response = UpstreamResponse(status=200, body=b"{}")
    assert transform_request(provider=other, model="m", request=chat(), api_key="") is None
    assert transform_response(provider=other, request=chat(), response=response) is None
    assert transform_stream(provider=other, request=chat(), response=response) is None


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "client_status"),
    [
        (429, b'{"error": {"message": "slow down"}}', {"retry-after": "3"}, "rate_limit", 429),
        (401, b'{"error": {"message": "bad key"}}', {}, "auth", 502),
        (500, b'{"error": "model runner crashed"}', {}, "server", 500),  # Ollama's string errors
        (503, b"<html>busy</html>", {}, "overloaded", 503),
        (
            400,
            b'{"error": {"message": "too long", "code": "context_length_exceeded"}}',
            {},
            "context_length",
            400,
        ),
    ],
)
def test_errors_are_classified(
    status: int, body: bytes, headers: dict[str, str], kind: str, client_status: int
) -> None:
    error = read_error(status, headers, body)
    assert (error.kind, error.status) == (kind, client_status)
    assert error.message
    if "retry-after" in headers:
        assert error.retry_after == 3


USAGE_CHUNK = (
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
)
TEXT_CHUNK = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def test_stream_reads_usage_and_hides_the_chunk_the_client_did_not_ask_for() -> None:
    stream = ExampleStream(include_usage=False)
    out = stream.feed(TEXT_CHUNK + USAGE_CHUNK[:30]) + stream.feed(USAGE_CHUNK[30:] + b"data: [DONE]\n\n")
    assert out == TEXT_CHUNK + b"data: [DONE]\n\n"
    assert stream.usage is not None and stream.usage.total_tokens == 5
    assert stream.close() == b""
    asked = ExampleStream(include_usage=True)
    assert asked.feed(USAGE_CHUNK) == USAGE_CHUNK


def test_stream_errors_raise_with_the_frames_before_them() -> None:
    stream = ExampleStream(include_usage=False)
    with pytest.raises(UpstreamFailure) as info:
        stream.feed(TEXT_CHUNK + b'data: {"error": {"message": "out of memory"}}\n\n')
    assert info.value.error.kind == "stream" and "out of memory" in info.value.error.message
    assert info.value.pending == TEXT_CHUNK
    cut = ExampleStream(include_usage=False)
    cut.feed(TEXT_CHUNK)
    with pytest.raises(UpstreamFailure):
        cut.close()  # ended without [DONE]
