"""Unit tests: the tool-call id scheme, pass-through for Gemini clients, headers, mappings."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import truckllm_provider_gemini as gemini
from truckllm_provider_gemini.errors import parse_duration, read_error
from truckllm_provider_gemini.ids import decode_call_id, encode_call_id
from truckllm_provider_gemini.response import finish_reason
from truckllm_provider_gemini.stream import GeminiPassthroughStream, GeminiStream

from truckllm.errors import UpstreamFailure
from truckllm.types import ChatRequest, Provider, UpstreamRequest, UpstreamResponse

USER = {"role": "user", "content": "hi"}
SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def upstream_of(provider: Provider, model: str, request: ChatRequest, key: str = "k") -> UpstreamRequest:
    result = gemini.transform_request(provider=provider, model=model, request=request, api_key=key)
    assert result is not None
    return result


def translator_of(provider: Provider, request: ChatRequest) -> GeminiStream | GeminiPassthroughStream:
    result = gemini.transform_stream(
        provider=provider, request=request, response=UpstreamResponse(status=200)
    )
    assert result is not None
    return result


# --- the tool-call id scheme -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gemini_id", "signature"),
    [
        (None, None),
        (None, base64.b64encode(b"\x00\xff\xfe" * 40).decode()),
        ("fc-123", None),
        ("fc-123", "CiRmYWtlAQID"),
        ("with spaces/and__ts_marks", "CiRmYWtlAQID"),
        ("ünïcode", None),
    ],
)
def test_call_id_round_trip(gemini_id: str | None, signature: str | None) -> None:
    call_id = encode_call_id(gemini_id, signature)
    assert SAFE.match(call_id)  # what Anthropic and OpenAI accept as tool ids
    ref = decode_call_id(call_id)
    assert ref.gemini_id == gemini_id
    assert ref.signature == signature


def test_synthesized_ids_are_unique_and_prefixed() -> None:
    ids = {encode_call_id(None, None) for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"call_[A-Za-z0-9]{24}", i) for i in ids)


@pytest.mark.parametrize(
    "foreign",
    ["call_abc", "toolu_01A09q90qw90lq917835lq9", "call__ts_", "x__ts_!!!", "gid_", "gidx_zz", "gidx_ff"],
)
def test_foreign_ids_carry_nothing(foreign: str) -> None:
    ref = decode_call_id(foreign)
    assert ref.signature is None
    assert ref.gemini_id is None


def test_invalid_signature_is_not_encoded() -> None:
    assert "__ts_" not in encode_call_id(None, "not base64!")
    assert "__ts_" not in encode_call_id(None, "")


# --- pass-through for a Gemini-dialect client --------------------------------------------------


def test_gemini_dialect_request_passes_through(gx: Any) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"topK": 3}}
    raw = json.dumps(body).encode()
    request = gx.request(body, dialect="gemini")
    assert request.body == raw
    upstream = upstream_of(gx.provider(), "gemini-2.5-pro", request, "k")
    assert upstream.body == raw
    assert upstream.url == gx.base_url + "/models/gemini-2.5-pro:generateContent"
    answer = json.dumps(
        {"candidates": [{"content": {"parts": [{"text": "yo"}]}, "finishReason": "STOP"}]}
    ).encode()
    result = gx.respond(request, answer)
    assert result.dialect == "gemini" and result.body == answer
    error = gx.respond(
        request, {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}, 503
    ).error
    assert error.kind == "overloaded"


def test_gemini_dialect_stream_passes_frames_through(gx: Any) -> None:
    request = gx.request({"contents": [], "stream": True}, dialect="gemini")
    events = [
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": {"promptTokenCount": 2}},
        {
            "candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4},
        },
    ]
    raw = gx.sse(events)
    translator = translator_of(gx.provider(), request)
    assert translator.dialect == "gemini"
    out = b"".join(translator.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)) + translator.close()
    assert out == raw
    assert translator.usage is not None and translator.usage.total_tokens == 4
    # a raw error and a cut stream still fail
    for tail in (b'{"error": {"code": 500, "message": "x", "status": "INTERNAL"}}\n', b""):
        cut = translator_of(gx.provider(), request)
        cut.feed(gx.sse(events[:1]))
        with pytest.raises(UpstreamFailure):
            cut.feed(tail)
            cut.close()


def test_gemini_dialect_embeddings_url(gx: Any) -> None:
    request = gx.request({"requests": []}, endpoint="embeddings", dialect="gemini")
    upstream = upstream_of(gx.provider(), "gemini-embedding-001", request, "k")
    assert upstream.url.endswith("/models/gemini-embedding-001:batchEmbedContents")


# --- headers and URLs --------------------------------------------------------------------------


def test_headers(gx: Any) -> None:
    provider = Provider(
        name="g", type="gemini", base_url="https://proxy.test/v1beta", headers={"x-team": "a"}
    )
    request = gx.request({"model": "m", "messages": [USER], "stream": True})
    upstream = upstream_of(provider, "gemini-2.5-flash", request, "secret")
    assert upstream.headers == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "x-goog-api-key": "secret",
        "x-team": "a",
    }
    assert upstream.stream is True
    assert b"secret" not in upstream.body and "secret" not in upstream.url
    keyless = upstream_of(provider, "m", request, "")
    assert "x-goog-api-key" not in keyless.headers


def test_camel_case_only(gx: Any) -> None:
    """Every key Gemini receives is camelCase (the fake rejects snake_case names)."""
    body = gx.translate(
        {
            "model": "m",
            "messages": [{"role": "system", "content": "s"}, USER],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {
                            "type": "object",
                            "properties": {"snake_case_arg": {"type": "string"}},
                        },
                    },
                }
            ],
            "tool_choice": "required",
            "max_tokens": 5,
            "top_p": 0.5,
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        }
    )

    def keys(node: Any, skip: bool = False) -> list[str]:
        if isinstance(node, dict):
            found = [] if skip else list(node)
            for key, value in node.items():
                found += keys(value, skip=key in ("properties", "args", "output"))
            return found
        if isinstance(node, list):
            return [k for item in node for k in keys(item)]
        return []

    assert all("_" not in key for key in keys(body))


# --- mappings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "tool", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        (None, True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("LANGUAGE", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("UNEXPECTED_TOOL_CALL", False, "stop"),
        ("TOO_MANY_TOOL_CALLS", False, "stop"),
        ("OTHER", False, "stop"),
        ("FINISH_REASON_UNSPECIFIED", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, tool: bool, expected: str) -> None:
    assert finish_reason(reason, tool) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("47s", 47.0),
        ("0.5s", 0.5),
        ("1.234567s", 1.234567),
        ("0s", 0.0),
        ("s", None),
        ("47", None),
        (47, None),
        ("-1s", None),
        ("nans", None),
    ],
)
def test_parse_duration(text: Any, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_error_without_body_keeps_status() -> None:
    assert read_error(503, b"").kind == "overloaded"
    assert read_error(429, b"").kind == "rate_limit"
    assert read_error(401, b"{}").kind == "auth"
    assert (
        read_error(499, b'{"error": {"code": 499, "status": "CANCELLED", "message": "gone"}}').kind
        == "server"
    )
    assert read_error(418, b"teapot").kind == "bad_request"
    assert read_error(302, b"").status >= 500  # a redirect is not an answer


def test_parse_usage_of_garbage_is_none(gx: Any) -> None:
    request = gx.request({"model": "m", "messages": [USER]})
    assert gemini.parse_usage(provider=gx.provider(), request=request, body=b"nope") is None
    assert gemini.parse_usage(provider=gx.provider(), request=request, body=b"{}") is None
