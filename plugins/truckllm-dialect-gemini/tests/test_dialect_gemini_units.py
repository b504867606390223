"""Unit tests of the dialect object: keys, labels, errors, stream forms, the typed form's validity."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_dialect_gemini import NAME, GeminiRequest
from truckllm_dialect_gemini.errors import STREAM_FORM, rpc_status

from truckllm._internal.endpoint import content_size
from truckllm._internal.schemas.openai import ChatCompletionRequest, EmbeddingRequest
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest

HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


# --- keys ----------------------------------------------------------------------------------------


def test_credentials(gk: Any) -> None:
    creds = gk.dialect.credentials
    assert creds({"x-goog-api-key": "a"}, {"key": "b"}) == "a"
    assert creds({}, {"key": "b"}) == "b"
    assert creds({"authorization": "Bearer c"}, {}) == "c"
    assert creds({"x-goog-api-key": " ", "authorization": "Bearer c"}, {"key": ""}) == "c"
    assert creds({}, {}) is None


# --- parse ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "dialect", "sse", "content_type"),
    [
        ("generateContent", {}, NAME, True, None),
        ("streamGenerateContent", {"alt": "sse"}, NAME, True, "text/event-stream"),
        ("streamGenerateContent", {}, NAME, False, "application/json; charset=UTF-8"),
        ("streamGenerateContent", {"alt": "json"}, NAME, False, "application/json; charset=UTF-8"),
    ],
)
def test_stream_forms(
    gk: Any, method: str, query: dict[str, str], dialect: str, sse: bool, content_type: str | None
) -> None:
    request = gk.parse(HELLO, method, query=query)
    assert isinstance(request, GeminiRequest)
    assert (request.dialect, request.sse, request.method) == (dialect, sse, method)
    assert request.stream is (method == "streamGenerateContent")
    assert request.include_usage is request.stream
    assert STREAM_FORM.get() == ("sse" if sse else "array")
    if content_type:
        assert gk.dialect.stream_content_type(request) == content_type


def test_embed_labels(gk: Any) -> None:
    single = gk.parse({"content": {"parts": [{"text": "x"}]}}, "embedContent")
    batch = gk.parse(
        {"requests": [{"model": "models/alias", "content": {"parts": [{"text": "x"}]}}]}, "batchEmbedContents"
    )
    assert (single.endpoint, single.dialect) == ("embeddings", NAME)
    assert (batch.endpoint, batch.dialect) == ("embeddings", NAME)
    counted = gk.parse(HELLO, "countTokens")
    assert (counted.endpoint, counted.dialect) == ("count_tokens", NAME)


def test_snake_case_is_camel_case(gk: Any) -> None:
    camel = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}],
        "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 2000}},
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "tools": [
            {"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "minProperties": 1}}]}
        ],
    }
    snake = {
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "iVBO"}}]}
        ],
        "generation_config": {"max_output_tokens": 5, "thinking_config": {"thinking_budget": 2000}},
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}},
        "tools": [
            {"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT", "min_properties": 1}}]}
        ],
    }
    assert gk.typed(gk.parse(snake)) == gk.typed(gk.parse(camel))
    mixed = {"contents": HELLO["contents"], "generationConfig": {"top_k": 3}}
    assert gk.typed(gk.parse(mixed))["top_k"] == 3


def test_the_body_is_kept_as_received(gk: Any) -> None:
    raw = b'{"contents":[{"parts":[{"text":"a"}]}],\n "generation_config": {"top_p": 0.5}}'
    request = gk.parse(raw)
    assert request.body is raw


def test_tool_call_ids_are_stable_across_turns(gk: Any) -> None:
    """The same history gives the same ids every turn (a new turn only appends messages)."""
    turn = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": 1}}}]},
    ]
    first = gk.typed(gk.parse({"contents": turn}))["messages"]
    later = gk.typed(gk.parse({"contents": [*turn, {"role": "model", "parts": [{"text": "ok"}]}, turn[0]]}))
    assert later["messages"][: len(first)] == first
    assert first[1]["tool_calls"][0]["id"] == first[2]["tool_call_id"] == "call_1_0"


def test_a_streamed_model_turn_is_one_assistant_message(gk: Any) -> None:
    """google-genai's chat sessions keep a streamed answer as one model content per chunk."""
    contents = [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"text": "Let me "}]},
        {"role": "model", "parts": [{"text": "check."}, {"functionCall": {"name": "a", "args": {}}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "b", "args": {"x": 1}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "b", "response": {"output": "B"}}},
            {"functionResponse": {"name": "a", "response": {"output": "A"}}},
        ]},
    ]  # fmt: skip
    messages = gk.typed(gk.parse({"contents": contents}))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["content"] == "Let me check."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_2_0", "call_3_0"]
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:]] == [("call_2_0", "A"), ("call_3_0", "B")]
    with pytest.raises(GatewayError, match="number of function response parts"):
        gk.parse({"contents": [*contents[:4], {"role": "user", "parts": [contents[4]["parts"][0]]}]})


def test_typed_forms_are_valid_openai_requests(gk: Any) -> None:
    """What other providers get is what the kernel accepts from an OpenAI client."""
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "golden" / "requests").glob("*.json")):
        case = json.loads(path.read_text())
        if "typed" not in case:
            continue
        kind = EmbeddingRequest if case.get("method", "").endswith(("mbedContent", "mbedContents")) else None
        kind = kind or ChatCompletionRequest
        decoded = msgspec.json.decode(json.dumps(case["typed"]).encode(), type=kind)
        if isinstance(decoded, ChatCompletionRequest):
            assert content_size(decoded) >= 0
            for tool in decoded.tools or ():
                assert tool.type == "function"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"contents": [{"parts": [{"text": "\xff"}]}]}', "Invalid JSON payload received"),
        (b'{"contents": [{"parts": [{"functionCall": {"name": "f", "args": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000
         + b"}}]}]}", "nested too deeply"),
        (b'{"contents": [{"parts": [{"text": "a"}], "role": "user"}], "tools": [{"functionDeclarations": '
         b'[{"name": "f", "parameters": ' + b'{"items": ' * 70 + b"{}" + b"}" * 70 + b"}]}]}", "nested too deeply"),
    ],
)  # fmt: skip
def test_unreadable_bodies_are_400(gk: Any, body: bytes, message: str) -> None:
    with pytest.raises(GatewayError, match=message) as caught:
        gk.parse(body)
    assert caught.value.status == 400


def test_unknown_method_is_404(gk: Any) -> None:
    route = next(r for r in gk.dialect.routes if r.name == "unknown")
    with pytest.raises(GatewayError) as caught:
        gk.dialect.parse(route, b"{}", {"model": "m", "method": "predict"}, {}, {})
    assert caught.value.status == 404 and caught.value.message == "Method not found: models/m:predict."


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rpc"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (413, "INVALID_ARGUMENT"),
        (418, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (499, "CANCELLED"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (599, "INTERNAL"),
    ],
)
def test_error_statuses(gk: Any, status: int, rpc: str) -> None:
    assert rpc_status(status) == rpc
    body = json.loads(gk.dialect.error_body(GatewayError(status, "boom")))
    assert body == {"error": {"code": status, "message": "boom", "status": rpc}}


def test_error_details(gk: Any) -> None:
    limited = GatewayError(
        429, "slow down", type="rate_limit_error", code="rate_limit_exceeded", headers={"retry-after": "7"}
    )
    assert json.loads(gk.dialect.error_body(limited))["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "truckllm",
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
    ]
    bad = GatewayError(400, "Too many tools", param="tools")
    assert json.loads(gk.dialect.error_body(bad))["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "tools", "description": "Too many tools"}],
        }
    ]
    missing = GatewayError(401, "You didn't provide an API key. Pass it as ...", code="invalid_api_key")
    error = json.loads(gk.dialect.error_body(missing))["error"]
    assert error["message"].startswith("Method doesn't allow unregistered callers")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_stream_error_forms(gk: Any) -> None:
    error = GatewayError(503, "The model is overloaded.", type="server_error")
    STREAM_FORM.set("sse")
    sse = gk.dialect.stream_error(error)
    assert not sse.startswith(b"data:") and sse.startswith(b"{\n") and sse.endswith(b"}\n")
    assert json.loads(sse) == {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    STREAM_FORM.set("array")
    array = gk.dialect.stream_error(error)
    assert array.startswith(b"\n,\r\n{") and array.endswith(b"\n]")
    assert json.loads(b"[{}" + array)[-1]["error"]["code"] == 503


# --- answers and streams from an unknown source --------------------------------------------------


def test_unknown_sources_are_502(gk: Any) -> None:
    request = gk.parse(HELLO)
    with pytest.raises(GatewayError) as caught:
        gk.dialect.response(request, b"{}", "anthropic")
    assert caught.value.status == 502
    with pytest.raises(GatewayError):
        gk.dialect.stream(request, "anthropic")


def test_a_plain_chat_request_is_served_too(gk: Any) -> None:
    """A ChatRequest built elsewhere (not a GeminiRequest) gets the defaults: SSE, no thoughts."""
    plain = ChatRequest(endpoint="chat", dialect=NAME, body=b"{}", model="m", stream=True)
    assert gk.dialect.stream_content_type(plain) == "text/event-stream"
    answer = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
    }
    out = json.loads(gk.dialect.response(plain, json.dumps(answer).encode(), "openai"))
    assert out["candidates"][0]["content"]["parts"] == [{"text": "hi"}]


@pytest.mark.parametrize(
    ("alt", "source"), [("sse", "openai"), ("", "openai"), ("sse", "gemini"), ("", "gemini")]
)
def test_translators_end_a_failed_stream_in_their_form(gk: Any, alt: str, source: str) -> None:
    """Each translator knows its client's form (for a kernel that asks it rather than the dialect)."""
    request = gk.parse(HELLO, "streamGenerateContent", query={"alt": alt})
    error = GatewayError(503, "overloaded", type="server_error")
    translator = gk.dialect.stream(request, source)
    if not alt:
        assert json.loads(translator.error(error)) == [json.loads(gk.dialect.error_body(error))]
    frames = (
        gk.openai_frames([{"id": "c", "choices": [{"index": 0, "delta": {"content": "Hello"}}]}])
        if source == "openai"
        else gk.gemini_frames(
            [{"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}}]}]
        )
    )
    started = translator.feed(frames)
    ended = started + translator.error(error)
    if alt:
        assert not translator.error(error).startswith(b"data:")
        assert json.loads(translator.error(error))["error"]["status"] == "UNAVAILABLE"
    else:
        assert json.loads(ended)[-1]["error"]["code"] == 503
